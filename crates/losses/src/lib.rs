//! The losses of kiln: mean squared and absolute error, Huber, log-cosh, and binary,
//! categorical and sparse categorical cross-entropy, from probabilities or logits,
//! with label smoothing, class and sample weights, and the reductions `mean`, `sum`
//! and `none`.
//!
//! A [`Loss`] says which loss; a [`Criterion`] binds it to a model's output and
//! computes the value and the gradient in one pass of the backend's loss kernel. When
//! the model ends in `softmax` (or `sigmoid`) and the loss is a categorical (or binary)
//! cross-entropy, the gradient is the fused `p - y` with respect to the logits, never
//! softmax's backward chained with the logarithm's.
//!
//! ```
//! use kiln_kernels::{Cpu, Tensor};
//! use kiln_losses::{BatchTargets, Criterion, Loss};
//! use kiln_shape::{Activation, Rank1};
//!
//! let cpu = Cpu::with_threads(1)?;
//! // Two samples of three class probabilities, made by a softmax.
//! let probs = Tensor::<Rank1<3>, _>::from_slice(&cpu, 2, &[0.7, 0.2, 0.1, 0.1, 0.1, 0.8])?;
//! let loss = Loss::sparse_categorical_crossentropy();
//! let mut criterion = Criterion::<Rank1<3>, Cpu>::new(loss, &cpu, 2, Some(Activation::Softmax))?;
//! let value = criterion.compute(&probs.view(), BatchTargets::Labels(&[0, 2]), None)?;
//! assert!((value - (-(0.7f32.ln()) - 0.8f32.ln()) / 2.0).abs() < 1e-6);
//! // The fused gradient with respect to the logits: (p - y) / batch.
//! let grad = criterion.gradient().to_vec(&cpu)?;
//! assert!((grad[0] - (0.7 - 1.0) / 2.0).abs() < 1e-6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod criterion;
mod error;
mod loss;
mod sequence;

pub use criterion::{BatchTargets, Criterion};
pub use error::{Error, Result};
pub use loss::{Loss, Reduction};
pub use sequence::SequenceCriterion;
