//! Shapes, and the shape rule of every kiln layer.
//!
//! This crate is the single place where a layer's output shape is computed from its
//! input shape. The `model!` macro calls these rules while the user's crate compiles,
//! and the layers of `kiln-nn` call the same functions when they are built, so the two
//! can never disagree. It has no dependencies, so that the proc-macro stays light.
//!
//! Shapes are per sample: the batch size is a run-time value and never appears here.
//! Images are `[height, width, channels]` (Keras order), feature vectors `[features]`.
//!
//! ```
//! use kiln_shape::{Activation, Conv2dSpec, LayerSpec, Padding, Shape};
//!
//! let conv = LayerSpec::Conv2d(Conv2dSpec {
//!     filters: 32,
//!     kernel: (3, 3),
//!     stride: (1, 1),
//!     padding: Padding::Valid,
//!     activation: Activation::Relu,
//! });
//! let out = conv.output_shape(&Shape::new(&[32, 32, 3])).unwrap();
//! assert_eq!(out, Shape::new(&[30, 30, 32]));
//! assert_eq!(conv.parameter_count(&Shape::new(&[32, 32, 3])), 896);
//! ```

mod error;
mod rules;
mod shape;
mod spec;

pub use error::{ShapeError, SpecError};
pub use rules::{conv_output_len, same_padding_before};
pub use shape::{MAX_RANK, Rank1, Rank2, Rank3, Shape, StaticShape};
pub use spec::{Activation, Conv2dSpec, DenseSpec, DropoutSpec, LayerSpec, Padding, Pool2dSpec};
