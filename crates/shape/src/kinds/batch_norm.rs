//! `BatchNorm(activation)`: batch normalisation over the last axis (the channels of
//! images, the features of vectors).

use super::dense::product_traits;
use crate::kind::{ArgDef, ArgType, Args, LayerKind, Spec, Traits, struct_literal};
use crate::{Activation, Shape, ShapeError, SpecError};

/// Normalises each channel with the batch's statistics in training and with running
/// averages of them in inference, then scales and shifts it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormSpec {
    /// The weight kept of the running averages at each training step, Keras's meaning:
    /// `running = momentum * running + (1 - momentum) * batch` (PyTorch's momentum is
    /// one minus this).
    pub momentum: f32,
    /// Added to the variance before its square root.
    pub epsilon: f32,
    /// Whether the running variance averages the batches' unbiased variances
    /// (PyTorch) rather than their biased ones (Keras).
    pub unbiased: bool,
    /// Whether the shift (`beta`, the tensor `bias`) is trained; when not, it stays 0.
    pub center: bool,
    /// Whether the scale (`gamma`, the tensor `weight`) is trained; when not, it
    /// stays 1.
    pub scale: bool,
    /// Applied after the scale and shift, in the same pass where it can be.
    pub activation: Activation,
}

impl BatchNormSpec {
    /// Keras's defaults: momentum 0.99, epsilon 1e-3, biased running variance.
    pub const KERAS: BatchNormSpec = BatchNormSpec {
        momentum: 0.99,
        epsilon: 1e-3,
        unbiased: false,
        center: true,
        scale: true,
        activation: Activation::Linear,
    };

    /// PyTorch's defaults: momentum 0.1 in PyTorch's sense (0.9 here), epsilon 1e-5,
    /// unbiased running variance.
    pub const PYTORCH: BatchNormSpec = BatchNormSpec {
        momentum: 0.9,
        epsilon: 1e-5,
        unbiased: true,
        center: true,
        scale: true,
        activation: Activation::Linear,
    };
}

/// `BatchNorm`.
pub static BATCH_NORM: LayerKind = LayerKind {
    name: "BatchNorm",
    aliases: &["BatchNormalization", "BatchNorm2d", "BatchNorm1d"],
    about: "normalises each channel (last axis) with batch statistics in training and running averages in inference, then scales and shifts",
    args: &[
        ArgDef::optional("activation", ArgType::Activation, "linear"),
        ArgDef::optional(
            "convention",
            ArgType::Choice(&["keras", "pytorch"]),
            "keras",
        )
        .named_only(),
        ArgDef::optional("momentum", ArgType::Number, "0.99 (keras), 0.9 (pytorch)").named_only(),
        ArgDef::optional("epsilon", ArgType::Number, "0.001 (keras), 1e-5 (pytorch)")
            .named_only()
            .aliases(&["eps"]),
        ArgDef::optional("center", ArgType::Flag, "true").named_only(),
        ArgDef::optional("scale", ArgType::Flag, "true").named_only(),
    ],
    runtime: "::kiln::nn::layers::batch_norm::BatchNorm<B>",
    spec: batch_norm_from,
};

fn batch_norm_from(args: &Args) -> Box<dyn Spec> {
    let defaults = match args.choice("convention") {
        Some("pytorch") => BatchNormSpec::PYTORCH,
        _ => BatchNormSpec::KERAS,
    };
    Box::new(BatchNormSpec {
        momentum: args.number("momentum").unwrap_or(defaults.momentum),
        epsilon: args.number("epsilon").unwrap_or(defaults.epsilon),
        unbiased: defaults.unbiased,
        center: args.flag("center").unwrap_or(true),
        scale: args.flag("scale").unwrap_or(true),
        activation: args.activation("activation"),
    })
}

impl Spec for BatchNormSpec {
    fn kind_name(&self) -> &'static str {
        BATCH_NORM.name
    }

    fn validate(&self) -> Vec<SpecError> {
        let mut errors = Vec::new();
        if !(0.0..1.0).contains(&self.momentum) {
            errors.push(SpecError {
                argument: "momentum",
                message: format!(
                    "must be in [0, 1) (the weight kept of the running averages), got {:?}",
                    self.momentum
                ),
            });
        }
        if !(self.epsilon > 0.0 && self.epsilon.is_finite()) {
            errors.push(SpecError {
                argument: "epsilon",
                message: format!("must be positive, got {:?}", self.epsilon),
            });
        }
        errors.extend(self.activation.check().err());
        errors
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        if input.rank() == 0 || input.size() == 0 {
            return Err(ShapeError::new(
                "an input with a channel axis to normalise",
                *input,
            ));
        }
        Ok(*input)
    }

    fn parameter_count(&self, input: &Shape) -> Option<usize> {
        let channels = input.dims().last().copied().unwrap_or(0);
        channels.checked_mul(usize::from(self.center) + usize::from(self.scale))
    }

    fn state_count(&self, input: &Shape) -> usize {
        input.dims().last().copied().unwrap_or(0).saturating_mul(2)
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn traits(&self) -> Traits {
        // Like a product: the backward pass reads the input (to normalise it again),
        // the output when the activation differentiates from it, and can add to an
        // input gradient.
        product_traits(self.activation)
    }

    fn rust(&self) -> String {
        struct_literal(
            "::kiln::shape::BatchNormSpec",
            &[
                ("momentum", &self.momentum),
                ("epsilon", &self.epsilon),
                ("unbiased", &self.unbiased),
                ("center", &self.center),
                ("scale", &self.scale),
                ("activation", &self.activation),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ArgValue;

    #[test]
    fn conventions_set_the_defaults_and_arguments_override_them() {
        let spec = |args: Args| (BATCH_NORM.spec)(&args).rust();
        assert_eq!(spec(Args::new()), BatchNormSpec::KERAS.rust());
        let pytorch = Args::new().with("convention", ArgValue::Choice("pytorch"));
        assert_eq!(spec(pytorch.clone()), BatchNormSpec::PYTORCH.rust());
        let slower = pytorch.with("momentum", ArgValue::Number(0.5));
        assert!(spec(slower).contains("momentum: 0.5f32, epsilon: 1e-5f32, unbiased: true"));
    }

    #[test]
    fn counts_follow_keras() {
        let image = Shape::new(&[8, 8, 16]);
        assert_eq!(BatchNormSpec::KERAS.parameter_count(&image), Some(32));
        assert_eq!(BatchNormSpec::KERAS.state_count(&image), 32);
        let frozen = BatchNormSpec {
            scale: false,
            ..BatchNormSpec::KERAS
        };
        assert_eq!(frozen.parameter_count(&image), Some(16));
        assert_eq!(
            BatchNormSpec::KERAS
                .output_shape(&Shape::new(&[5]))
                .unwrap(),
            Shape::new(&[5])
        );
    }

    #[test]
    fn momentum_and_epsilon_are_checked() {
        let bad = BatchNormSpec {
            momentum: 1.0,
            epsilon: 0.0,
            ..BatchNormSpec::KERAS
        };
        let errors: Vec<&str> = bad.validate().iter().map(|e| e.argument).collect();
        assert_eq!(errors, ["momentum", "epsilon"]);
    }
}
