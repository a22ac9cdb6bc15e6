//! `Flatten` and `Identity`: layers that keep the memory as it is.

use crate::kind::{LayerKind, Spec, Traits};
use crate::{Shape, ShapeError};

/// Any shape to rank 1, in row-major order: in NHWC the memory does not move.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlattenSpec;

/// `Flatten`.
pub static FLATTEN: LayerKind = LayerKind {
    name: "Flatten",
    aliases: &[],
    about: "any shape to a vector, in row-major order (no copy)",
    args: &[],
    runtime: "::kiln::nn::layers::flatten::Flatten",
    spec: |_| Box::new(FlattenSpec),
};

impl Spec for FlattenSpec {
    fn kind_name(&self) -> &'static str {
        FLATTEN.name
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        Ok(Shape::new(&[input.size()]))
    }

    fn traits(&self) -> Traits {
        Traits {
            alias: true,
            ..Traits::default()
        }
    }

    fn rust(&self) -> String {
        "::kiln::shape::FlattenSpec".into()
    }
}

/// The input, unchanged: a branch of a `Concat` that carries the block's input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdentitySpec;

/// `Identity`.
pub static IDENTITY: LayerKind = LayerKind {
    name: "Identity",
    aliases: &[],
    about: "the input unchanged (a `Concat` branch that carries the block's input)",
    args: &[],
    runtime: "::kiln::nn::layers::flatten::Identity",
    spec: |_| Box::new(IdentitySpec),
};

impl Spec for IdentitySpec {
    fn kind_name(&self) -> &'static str {
        IDENTITY.name
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        Ok(*input)
    }

    fn traits(&self) -> Traits {
        Traits {
            alias: true,
            ..Traits::default()
        }
    }

    fn rust(&self) -> String {
        "::kiln::shape::IdentitySpec".into()
    }
}
