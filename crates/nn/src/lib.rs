//! The layers of kiln, and the [`Model`] trait that generated networks implement.
//!
//! Each layer is built from its spec (its kind's, in `kiln-shape`) and input shape
//! with the same shape rule that `model!` ran at compile time, owns its parameters
//! and gradients, and runs forward and backward on buffers that the model's workspace
//! owns. Layers are written once against [`kiln_kernels::Backend`]. Between layers, a
//! model's graph runs the ops of [`graph`]: residual sums, concatenations, and the
//! sums of gradients where a value feeds several consumers.
//!
//! ```
//! use kiln_kernels::{Cpu, Storage};
//! use kiln_kernels::rng::Rng;
//! use kiln_nn::{Dense, Layer, Mode};
//! use kiln_shape::{Activation, DenseSpec, Shape};
//!
//! let cpu = Cpu::with_threads(1)?;
//! let spec = DenseSpec { units: 2, activation: Activation::Relu };
//! let mut dense = Dense::build(&cpu, &spec, Shape::new(&[3]), 4, &mut Rng::new(0))?;
//! let x = cpu.alloc_from(&[1.0, 2.0, 3.0])?;
//! let mut y = cpu.alloc(2)?;
//! dense.forward(&cpu, &x, &mut y, 1, Mode::Eval)?;
//! assert!(cpu.to_host(&y, 2)?.iter().all(|v| *v >= 0.0));
//! # Ok::<(), kiln_nn::Error>(())
//! ```

pub mod dataflow;
mod error;
pub mod graph;
pub mod init;
mod layer;
pub mod layers;
mod model;
mod summary;

pub use dataflow::{Node, NodeOp};
pub use error::{Error, Result};
pub use layer::{Backward, Layer, LayerInfo, Mode};
pub use layers::activation::ActivationLayer;
pub use layers::attention::MultiHeadAttention;
pub use layers::batch_norm::BatchNorm;
pub use layers::conv1d::Conv1d;
pub use layers::conv2d::{Conv2d, ConvKind, Convolution};
pub use layers::dense::Dense;
pub use layers::dropout::Dropout;
pub use layers::embedding::Embedding;
pub use layers::flatten::{Flatten, Identity};
pub use layers::layer_norm::LayerNorm;
pub use layers::pool1d::{GlobalPool1d, MaxPool1d, Pool1dKind, Pooling1d};
pub use layers::pool2d::{GlobalAvgPool2d, Pool2d};
pub use layers::position_embedding::PositionEmbedding;
pub use layers::recurrent::{Recurrent, RecurrentWeights, weights_from_pytorch};
pub use layers::time_dense::TimeDense;
pub use model::Model;
pub use summary::summary;
