//! `Dropout(rate)`: inverted dropout.

use crate::kind::{ArgDef, ArgType, LayerKind, Spec, Traits, struct_literal};
use crate::{Shape, ShapeError, SpecError};

/// Inverted dropout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutSpec {
    /// The fraction of inputs zeroed in training, in `[0, 1)`.
    pub rate: f32,
}

/// `Dropout`.
pub static DROPOUT: LayerKind = LayerKind {
    name: "Dropout",
    aliases: &["Dropout1d", "Dropout2d", "Dropout2D", "SpatialDropout2D"],
    about: "zeroes inputs with probability `rate` in training, scaling the rest",
    args: &[ArgDef::required("rate", ArgType::Number).aliases(&["p"])],
    runtime: "::kiln::nn::layers::dropout::Dropout",
    spec: |args| {
        Box::new(DropoutSpec {
            rate: args.number("rate").unwrap_or(0.0),
        })
    },
};

impl Spec for DropoutSpec {
    fn kind_name(&self) -> &'static str {
        DROPOUT.name
    }

    fn validate(&self) -> Vec<SpecError> {
        if (0.0..1.0).contains(&self.rate) {
            Vec::new()
        } else {
            vec![SpecError {
                argument: "rate",
                message: format!("must be in [0, 1), got {:?}", self.rate),
            }]
        }
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        super::elementwise(input)
    }

    fn traits(&self) -> Traits {
        // The mask is recomputed from its seed, so nothing is read.
        Traits::default()
    }

    fn rust(&self) -> String {
        struct_literal("::kiln::shape::DropoutSpec", &[("rate", &self.rate)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_lies_in_zero_to_one() {
        assert_eq!(
            DropoutSpec { rate: 1.0 }.validate()[0].to_string(),
            "`rate` must be in [0, 1), got 1.0"
        );
        assert!(DropoutSpec { rate: f32::NAN }.validate().len() == 1);
        assert!(DropoutSpec { rate: 0.5 }.validate().is_empty());
    }
}
