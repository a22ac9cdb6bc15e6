//! [`Activation`]: the functions a layer applies at its output, or that stand as
//! layers of their own.

use crate::SpecError;
use crate::kind::RustLiteral;

/// An element-wise (or, for softmax, per-row) activation function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// The identity (Keras's `linear`).
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `x` for `x >= 0`, `negative_slope * x` below.
    LeakyRelu {
        /// The slope for negative inputs.
        negative_slope: f32,
    },
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// The hyperbolic tangent.
    Tanh,
    /// The exact GELU, `x * Phi(x)` with the normal CDF (Keras and PyTorch's default).
    Gelu,
    /// Softmax over the last axis.
    Softmax,
}

impl Activation {
    /// The slope that the identifier `leaky_relu` gets, as `keras.activations.leaky_relu`.
    pub const LEAKY_RELU_ACTIVATION_SLOPE: f32 = 0.2;
    /// The slope that the layer `LeakyRelu` gets by default, as `keras.layers.LeakyReLU`.
    pub const LEAKY_RELU_LAYER_SLOPE: f32 = 0.3;

    /// The activation named by a `model!` identifier (`relu`, `leaky_relu`, ...).
    pub fn from_ident(name: &str) -> Option<Self> {
        Some(match name {
            "linear" => Self::Linear,
            "relu" => Self::Relu,
            "leaky_relu" => Self::LeakyRelu {
                negative_slope: Self::LEAKY_RELU_ACTIVATION_SLOPE,
            },
            "sigmoid" => Self::Sigmoid,
            "tanh" => Self::Tanh,
            "gelu" => Self::Gelu,
            "softmax" => Self::Softmax,
            _ => return None,
        })
    }

    /// Every identifier [`Activation::from_ident`] accepts.
    pub const IDENTS: &'static [&'static str] = &[
        "linear",
        "relu",
        "leaky_relu",
        "sigmoid",
        "tanh",
        "gelu",
        "softmax",
    ];

    /// Other libraries' identifiers, and the one each means.
    pub const ALIASES: &'static [(&'static str, &'static str)] = &[
        ("identity", "linear"),
        ("none", "linear"),
        ("leakyrelu", "leaky_relu"),
        ("LeakyReLU", "leaky_relu"),
    ];

    /// The identifier, as written in `model!`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Relu => "relu",
            Self::LeakyRelu { .. } => "leaky_relu",
            Self::Sigmoid => "sigmoid",
            Self::Tanh => "tanh",
            Self::Gelu => "gelu",
            Self::Softmax => "softmax",
        }
    }

    /// Whether the backward pass needs the activation's input. Every other activation
    /// computes its derivative from its output, so layers keep only one buffer.
    pub fn backward_needs_input(&self) -> bool {
        matches!(self, Self::Gelu)
    }

    /// Checks the activation's own argument (a finite slope).
    pub fn check(&self) -> Result<(), SpecError> {
        if let Self::LeakyRelu { negative_slope } = self
            && !negative_slope.is_finite()
        {
            return Err(SpecError {
                argument: "negative_slope",
                message: format!("must be finite, got {negative_slope:?}"),
            });
        }
        Ok(())
    }
}

impl RustLiteral for Activation {
    fn rust(&self) -> String {
        let variant = match self {
            Self::Linear => "Linear".to_string(),
            Self::Relu => "Relu".to_string(),
            Self::LeakyRelu { negative_slope } => {
                format!("LeakyRelu {{ negative_slope: {} }}", negative_slope.rust())
            }
            Self::Sigmoid => "Sigmoid".to_string(),
            Self::Tanh => "Tanh".to_string(),
            Self::Gelu => "Gelu".to_string(),
            Self::Softmax => "Softmax".to_string(),
        };
        format!("::kiln::shape::Activation::{variant}")
    }
}
