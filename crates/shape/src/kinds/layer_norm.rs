//! `LayerNorm(epsilon)`: each sample's last axis normalised to zero mean and unit
//! variance, then scaled and shifted per feature.

use crate::kind::{ArgDef, ArgType, LayerKind, Spec, Traits, struct_literal};
use crate::{Shape, ShapeError, SpecError};

/// Layer normalisation over the last axis (Ba et al., 2016).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormSpec {
    /// Added to the variance before its square root.
    pub epsilon: f32,
}

/// `LayerNorm`.
pub static LAYER_NORM: LayerKind = LayerKind {
    name: "LayerNorm",
    aliases: &["LayerNormalization"],
    about: "normalises each step (or sample) over its features, then `gamma * x + beta` per feature",
    args: &[ArgDef::optional("epsilon", ArgType::Number, "1e-5")
        .aliases(&["eps"])
        .named_only()],
    runtime: "::kiln::nn::layers::layer_norm::LayerNorm<B>",
    spec: |args| {
        Box::new(LayerNormSpec {
            epsilon: args.number("epsilon").unwrap_or(1e-5),
        })
    },
};

impl Spec for LayerNormSpec {
    fn kind_name(&self) -> &'static str {
        LAYER_NORM.name
    }

    fn validate(&self) -> Vec<SpecError> {
        if self.epsilon > 0.0 && self.epsilon.is_finite() {
            Vec::new()
        } else {
            vec![SpecError {
                argument: "epsilon",
                message: format!("must be positive, got {:?}", self.epsilon),
            }]
        }
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        super::elementwise(input)
    }

    fn parameter_count(&self, input: &Shape) -> Option<usize> {
        input.dims().last().map(|f| 2 * f)
    }

    fn traits(&self) -> Traits {
        Traits {
            reads_input: true,
            accumulates_input_grad: true,
            ..Traits::default()
        }
    }

    fn rust(&self) -> String {
        struct_literal(
            "::kiln::shape::LayerNormSpec",
            &[("epsilon", &self.epsilon)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_shape_and_has_two_values_a_feature() {
        let spec = LayerNormSpec { epsilon: 1e-5 };
        let input = Shape::new(&[64, 128]);
        assert_eq!(spec.output_for(&input).unwrap(), input);
        assert_eq!(spec.parameter_count(&input), Some(256));
        let bad = LayerNormSpec { epsilon: 0.0 }.validate();
        assert_eq!(bad[0].to_string(), "`epsilon` must be positive, got 0.0");
    }
}
