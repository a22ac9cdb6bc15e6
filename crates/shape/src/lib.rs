//! Shapes, and the description and shape rule of every kiln layer kind.
//!
//! This crate is the single place where a layer kind is described: its name and
//! arguments as `model!` writes them, its checks, the rule that computes its output
//! shape from its input shape, its parameter count, the `kiln-nn` type that runs it
//! and the fusions it offers ([`LayerKind`], [`Spec`], [`Traits`]). The `model!` macro
//! reads these descriptions while the user's crate compiles, and the layers of
//! `kiln-nn` call the same rules when they are built, so the two can never disagree.
//! It has no dependencies, so that the proc-macro stays light.
//!
//! Shapes are per sample: the batch size is a run-time value and never appears here.
//! Images are `[height, width, channels]` (Keras order), sequences `[time, features]`
//! (Keras's NLC), feature vectors `[features]`.
//!
//! ```
//! use kiln_shape::{Activation, Conv2dSpec, Padding, Shape, Spec};
//!
//! let conv = Conv2dSpec {
//!     filters: 32,
//!     kernel: (3, 3),
//!     stride: (1, 1),
//!     padding: Padding::Valid,
//!     activation: Activation::Relu,
//! };
//! let out = conv.output_shape(&Shape::new(&[32, 32, 3])).unwrap();
//! assert_eq!(out, Shape::new(&[30, 30, 32]));
//! assert_eq!(conv.parameter_count(&Shape::new(&[32, 32, 3])), Some(896));
//! ```

mod activation;
mod error;
pub mod kind;
pub mod kinds;
mod shape;
mod window;

pub use activation::Activation;
pub use error::{ShapeError, SpecError};
pub use kind::{ArgDef, ArgType, ArgValue, Args, LayerKind, RustLiteral, Spec, Traits};
pub use kinds::attention::AttentionSpec;
pub use kinds::batch_norm::BatchNormSpec;
pub use kinds::conv1d::Conv1dSpec;
pub use kinds::conv2d::Conv2dSpec;
pub use kinds::dense::DenseSpec;
pub use kinds::dropout::DropoutSpec;
pub use kinds::embedding::EmbeddingSpec;
pub use kinds::flatten::{FlattenSpec, IdentitySpec};
pub use kinds::global_pool2d::GlobalAvgPool2dSpec;
pub use kinds::layer_norm::LayerNormSpec;
pub use kinds::pool1d::{GlobalPool1dSpec, MaxPool1dSpec};
pub use kinds::pool2d::{Pool2dSpec, PoolMode};
pub use kinds::position_embedding::PositionEmbeddingSpec;
pub use kinds::recurrent::{Cell, RecurrentSpec};
pub use kinds::time_dense::TimeDenseSpec;
pub use kinds::{KINDS, kind};
pub use shape::{MAX_RANK, Rank1, Rank2, Rank3, Shape, StaticShape, Tokens};
pub use window::{Padding, conv_output_len, same_padding_before};

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(filters: usize) -> Box<dyn Spec> {
        Box::new(Conv2dSpec {
            filters,
            kernel: (3, 3),
            stride: (1, 1),
            padding: Padding::Valid,
            activation: Activation::Relu,
        })
    }

    fn pool() -> Box<dyn Spec> {
        Box::new(Pool2dSpec {
            mode: PoolMode::Max,
            size: (2, 2),
            stride: (2, 2),
            padding: Padding::Valid,
        })
    }

    fn dense(units: usize) -> Box<dyn Spec> {
        Box::new(DenseSpec {
            units,
            activation: Activation::Relu,
        })
    }

    #[test]
    fn seed_cnn_shapes_and_parameters() {
        let layers = [
            conv(32),
            pool(),
            conv(64),
            pool(),
            conv(128),
            pool(),
            Box::new(FlattenSpec),
            dense(128),
            dense(10),
        ];
        let expected: [&[usize]; 9] = [
            &[30, 30, 32],
            &[15, 15, 32],
            &[13, 13, 64],
            &[6, 6, 64],
            &[4, 4, 128],
            &[2, 2, 128],
            &[512],
            &[128],
            &[10],
        ];
        let mut shape = Shape::new(&[32, 32, 3]);
        let mut params = 0;
        for (layer, want) in layers.iter().zip(expected) {
            params += layer.parameter_count(&shape).unwrap();
            shape = layer.output_shape(&shape).unwrap();
            assert_eq!(shape.dims(), want);
        }
        assert_eq!(params, 160_202);
    }

    #[test]
    fn kinds_have_unique_names_and_consistent_arguments() {
        let mut names = std::collections::HashSet::new();
        for kind in KINDS {
            assert!(names.insert(kind.name), "{} twice", kind.name);
            for alias in kind.aliases {
                assert!(KINDS.iter().all(|k| k.name != *alias), "{alias}");
            }
            // Positional arguments come first.
            let first_named = kind.args.iter().position(|a| !a.positional);
            if let Some(i) = first_named {
                assert!(
                    kind.args[i..].iter().all(|a| !a.positional),
                    "{}",
                    kind.name
                );
            }
            assert!(kind.runtime.starts_with("::kiln::nn::"), "{}", kind.runtime);
        }
    }

    #[test]
    fn every_kind_builds_from_its_required_arguments() {
        for kind in KINDS {
            let mut args = Args::new();
            for arg in kind.args.iter().filter(|a| a.is_required()) {
                let value = match arg.ty {
                    ArgType::Count => ArgValue::Count(4),
                    ArgType::Size => ArgValue::Size((1, 1)),
                    ArgType::Activation => ArgValue::Activation(Activation::Relu),
                    ArgType::Padding => ArgValue::Padding(Padding::Same),
                    ArgType::Number => ArgValue::Number(0.25),
                    ArgType::Flag => ArgValue::Flag(true),
                    ArgType::Choice(names) => ArgValue::Choice(names[0]),
                };
                args.set(arg.name, value);
            }
            let spec = (kind.spec)(&args);
            assert_eq!(spec.kind_name(), kind.name);
            assert!(
                spec.validate().is_empty(),
                "{}: {:?}",
                kind.name,
                spec.validate()
            );
            let rust = spec.rust();
            assert!(rust.starts_with("::kiln::shape::"), "{rust}");
        }
    }
}
