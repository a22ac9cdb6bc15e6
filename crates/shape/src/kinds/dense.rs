//! `Dense(units, activation)`: the fully connected layer.

use crate::kind::{ArgDef, ArgType, LayerKind, Spec, Traits, at_least_one, struct_literal};
use crate::{Activation, Shape, ShapeError, SpecError};

/// A fully connected layer on a rank-1 input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DenseSpec {
    /// Output features.
    pub units: usize,
    /// Applied to the affine output.
    pub activation: Activation,
}

/// `Dense`.
pub static DENSE: LayerKind = LayerKind {
    name: "Dense",
    aliases: &["Linear", "FullyConnected"],
    about: "`activation(x W + b)` on a vector",
    args: UNITS_AND_ACTIVATION,
    runtime: "::kiln::nn::layers::dense::Dense<B>",
    spec: |args| {
        Box::new(DenseSpec {
            units: args.count("units").unwrap_or(0),
            activation: args.activation("activation"),
        })
    },
};

/// The arguments of the kinds that multiply by a kernel of `units` columns and
/// apply an activation (`Dense`, `TimeDense`).
pub(crate) const UNITS_AND_ACTIVATION: &[ArgDef] = &[
    ArgDef::required("units", ArgType::Count).aliases(&["out_features"]),
    ArgDef::optional("activation", ArgType::Activation, "linear"),
];

/// The problems of `units` and `activation`, the checks of such a kind.
pub(crate) fn validate_units_and_activation(
    units: usize,
    activation: Activation,
) -> Vec<SpecError> {
    let mut errors = Vec::new();
    at_least_one(&mut errors, "units", units);
    errors.extend(activation.check().err());
    errors
}

impl Spec for DenseSpec {
    fn kind_name(&self) -> &'static str {
        DENSE.name
    }

    fn validate(&self) -> Vec<SpecError> {
        validate_units_and_activation(self.units, self.activation)
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        if input.rank() != 1 {
            let err = ShapeError::new("a rank-1 input", *input);
            return Err(if input.rank() > 1 {
                err.hint("insert `Flatten` (or `GlobalAvgPool2d`) before it")
            } else {
                err
            });
        }
        Ok(Shape::new(&[self.units]))
    }

    fn parameter_count(&self, input: &Shape) -> Option<usize> {
        input
            .size()
            .checked_mul(self.units)?
            .checked_add(self.units)
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn traits(&self) -> Traits {
        product_traits(self.activation)
    }

    fn rust(&self) -> String {
        struct_literal(
            "::kiln::shape::DenseSpec",
            &[("units", &self.units), ("activation", &self.activation)],
        )
    }
}

/// The traits of a layer that multiplies its input by its weights (a dense layer, a
/// convolution) and applies `activation`: the weight gradient reads the input; the
/// activation's backward, done in place on the output gradient, reads the output
/// (every activation but the identity differentiates from its output, except GELU,
/// which the layer differentiates from an input it keeps itself); the input gradient
/// is a product that can add to what its buffer holds.
pub(crate) fn product_traits(activation: Activation) -> Traits {
    Traits {
        reads_input: true,
        reads_output: !matches!(activation, Activation::Linear | Activation::Gelu),
        overwrites_output_grad: activation != Activation::Linear,
        accumulates_input_grad: true,
        ..Traits::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_after_an_image_asks_for_flatten() {
        let dense = DenseSpec {
            units: 128,
            activation: Activation::Relu,
        };
        let err = dense.output_shape(&Shape::new(&[2, 2, 128])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expects a rank-1 input but gets [2, 2, 128]: insert `Flatten` (or `GlobalAvgPool2d`) before it"
        );
        assert_eq!(dense.parameter_count(&Shape::new(&[512])), Some(65_664));
    }

    #[test]
    fn a_parameter_count_that_overflows_is_none() {
        let dense = DenseSpec {
            units: usize::MAX / 2,
            activation: Activation::Linear,
        };
        assert_eq!(dense.parameter_count(&Shape::new(&[4])), None);
    }

    #[test]
    fn built_from_arguments_with_keras_defaults() {
        let spec = (DENSE.spec)(&crate::Args::new().with("units", crate::ArgValue::Count(10)));
        assert_eq!(
            spec.rust(),
            "::kiln::shape::DenseSpec { units: 10usize, activation: ::kiln::shape::Activation::Linear }"
        );
    }
}
