//! `TimeDense(units, activation)`: the same dense layer at every time step (Keras's
//! `TimeDistributed(Dense(..))`).

use super::dense::{UNITS_AND_ACTIVATION, product_traits, validate_units_and_activation};
use crate::kind::{LayerKind, Spec, Traits, struct_literal};
use crate::{Activation, Shape, ShapeError, SpecError};

/// A dense layer applied to each time step of a `[time, features]` sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeDenseSpec {
    /// Output features of each step.
    pub units: usize,
    /// Applied to each step's affine output (softmax: over each step's units).
    pub activation: Activation,
}

/// `TimeDense`.
pub static TIME_DENSE: LayerKind = LayerKind {
    name: "TimeDense",
    aliases: &["TimeDistributed", "TimeDistributedDense"],
    about: "`activation(x W + b)` at each time step: `[time, features]` to `[time, units]`",
    args: UNITS_AND_ACTIVATION,
    runtime: "::kiln::nn::layers::time_dense::TimeDense<B>",
    spec: |args| {
        Box::new(TimeDenseSpec {
            units: args.count("units").unwrap_or(0),
            activation: args.activation("activation"),
        })
    },
};

impl Spec for TimeDenseSpec {
    fn kind_name(&self) -> &'static str {
        TIME_DENSE.name
    }

    fn validate(&self) -> Vec<SpecError> {
        validate_units_and_activation(self.units, self.activation)
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let Some((time, _)) = input.as_sequence() else {
            let err = ShapeError::new("a `[time, features]` sequence", *input);
            return Err(if input.rank() == 1 {
                err.hint(
                    "a per-time-step layer needs every step: give the recurrent layer before it `return_sequences = true`, or use `Dense` on the last step",
                )
            } else {
                err
            });
        };
        Ok(Shape::new(&[time, self.units]))
    }

    fn parameter_count(&self, input: &Shape) -> Option<usize> {
        let features = input.dims().last().copied().unwrap_or(0);
        features.checked_mul(self.units)?.checked_add(self.units)
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn traits(&self) -> Traits {
        product_traits(self.activation)
    }

    fn rust(&self) -> String {
        struct_literal(
            "::kiln::shape::TimeDenseSpec",
            &[("units", &self.units), ("activation", &self.activation)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_gets_the_same_dense_layer() {
        let spec = TimeDenseSpec {
            units: 65,
            activation: Activation::Softmax,
        };
        let input = Shape::new(&[64, 256]);
        assert_eq!(spec.output_for(&input).unwrap(), Shape::new(&[64, 65]));
        assert_eq!(spec.parameter_count(&input), Some(256 * 65 + 65));
        let err = spec.output_for(&Shape::new(&[256])).unwrap_err();
        assert!(err.to_string().contains("return_sequences = true"), "{err}");
    }
}
