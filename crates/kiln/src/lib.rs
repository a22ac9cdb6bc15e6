//! kiln: train neural networks in Rust with the workflow of Keras, on models whose
//! shapes the compiler checks.
//!
//! Declare a network with [`model!`]; the macro computes every layer's shape while
//! your crate compiles, rejects a wrong model with an error on the offending layer,
//! and generates straight-line forward and backward code that runs on any
//! [`Backend`] (the [`Cpu`] by default).
//!
//! ```
//! use kiln::prelude::*;
//!
//! kiln::model! {
//!     /// A small convolutional classifier for 8x8 grey images.
//!     pub struct Tiny {
//!         input: [8, 8, 1],
//!         conv: Conv2d(4, 3, relu),
//!         pool: MaxPool2d(2),
//!         flat: Flatten,
//!         out: Dense(10, softmax),
//!     }
//! }
//!
//! assert_eq!(<Tiny>::PARAMETERS, 4 * 9 + 4 + 36 * 10 + 10);
//! let cpu = Cpu::new()?;
//! let mut model = Tiny::new(&cpu, 32, 42)?;
//! let x = Tensor::<Rank3<8, 8, 1>, Cpu>::from_slice(&cpu, 2, &[0.5; 128])?;
//! let probabilities = model.forward(&x, Mode::Eval)?.to_vec(&cpu)?;
//! assert!((probabilities[..10].iter().sum::<f32>() - 1.0).abs() < 1e-5);
//!
//! // One training step: forward, loss and its gradient, backward, update.
//! let mut criterion = model.criterion(Loss::sparse_categorical_crossentropy())?;
//! let mut optimizer = Optimizer::new(Adam::default());
//! let output = model.forward(&x, Mode::Train)?;
//! let loss = criterion.compute(&output, BatchTargets::Labels(&[3, 7]), None)?;
//! assert!((loss - 10f32.ln()).abs() < 0.5, "about ln(10) before training: {loss}");
//! model.zero_grad()?;
//! model.backward(criterion.gradient(), criterion.grad_at())?;
//! optimizer.step(&mut model)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Guide
//!
//! - [Data](guide::data): CIFAR-10, MNIST, CSV and real tables, splits, preprocessing,
//!   augmentation.
//! - [Models](guide::models): `model!`'s syntax, blocks, and the errors it gives.
//! - [Training](guide::training): `fit`, a training step by hand, losses, optimizers,
//!   schedules, callbacks and metrics; tuning (`lr_find`, the batch size, a search).
//! - [Checkpoints, TensorBoard and ONNX](guide::files): save, load, resume, PyTorch.
//! - [The GPU](guide::gpu) and [benchmarks](guide::benchmarks).
//!
//! Every fallible call returns [`kiln::Result`](Result), whose [`Error`] every crate's
//! error converts into, so that `?` works across data, model and training calls.

pub use kiln_data as data;
pub use kiln_distributed as distributed;
pub use kiln_losses as losses;
pub use kiln_macros::model;
pub use kiln_nn as nn;
pub use kiln_onnx as onnx;
pub use kiln_optim as optim;
pub use kiln_shape as shape;
pub use kiln_train as train;

pub use kiln_kernels::{Backend, Cpu, Cuda, Storage, Tensor, TensorRef};

/// Backends, tensors, the parameter vocabulary a model exposes, and the seeded random
/// numbers of the initialisers. The ops and the CPU GEMM stay in `kiln-kernels`, for
/// benchmarks and new backends.
pub mod kernels {
    #[cfg(feature = "cuda")]
    pub use kiln_kernels::CudaBuffer;
    pub use kiln_kernels::rng;
    pub use kiln_kernels::{
        Backend, Cpu, CpuBuffer, Cuda, Error, GradAt, Group, ParamMut, ParamRef, Result, StateMut,
        StateRef, Storage, Tensor, TensorRef, Trainable, ViewParams, ViewState, VisitParams,
        VisitState, zero_gradients,
    };

    /// The input-gradient request of a model's backward pass.
    pub mod ops {
        pub use kiln_kernels::ops::InputGrad;
    }
}

mod error;

pub use error::{Error, Result};

/// The names a program that trains a model needs.
pub mod prelude {
    pub use kiln_data::{Augment, Dataset, Pipeline};
    pub use kiln_kernels::{Backend, Cpu, Cuda, GradAt, Storage, Tensor, TensorRef, Trainable};
    pub use kiln_losses::{BatchTargets, Criterion, Loss, Reduction};
    pub use kiln_nn::{Mode, Model};
    pub use kiln_onnx::ExportOnnx;
    pub use kiln_optim::{
        Adagrad, Adam, AdamW, CosineDecay, Ema, ExponentialDecay, Lion, Nadam, OneCycle, Optimizer,
        ParamGroup, PolynomialDecay, RmsProp, Schedule, Sgd, StepDecay,
    };
    pub use kiln_shape::{Rank1, Rank2, Rank3, Shape};
    pub use kiln_train::checkpoint;
    pub use kiln_train::{
        CsvLogger, EarlyStopping, EvaluateOptions, FitOptions, History, LearningRateScheduler,
        Metric, ModelCheckpoint, ReduceLrOnPlateau, TensorBoard, Trainer, Tta, Verbosity,
    };
}

pub mod guide;

/// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The architecture document's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/ARCHITECTURE.md")]
pub struct ArchitectureDoctests;
