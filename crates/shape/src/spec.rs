//! What each layer is, as data: the arguments written in `model!`, validated.

use crate::rules;
use crate::{Shape, ShapeError, SpecError};

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

    fn validate(&self) -> Result<(), SpecError> {
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

/// How a convolution or pooling window treats the border, as in Keras.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: the window stays inside the input.
    Valid,
    /// Zero padding so that the output is `ceil(input / stride)`; the extra row or
    /// column, when the total is odd, goes at the bottom and right (TensorFlow's rule).
    Same,
}

/// A fully connected layer on a rank-1 input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DenseSpec {
    /// Output features.
    pub units: usize,
    /// Applied to the affine output.
    pub activation: Activation,
}

/// A 2-D convolution on an `[height, width, channels]` input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dSpec {
    /// Output channels.
    pub filters: usize,
    /// Kernel `(height, width)`.
    pub kernel: (usize, usize),
    /// Stride `(vertical, horizontal)`.
    pub stride: (usize, usize),
    /// Border handling.
    pub padding: Padding,
    /// Applied to the convolution's output.
    pub activation: Activation,
}

/// A 2-D pooling window (max or average).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dSpec {
    /// Window `(height, width)`.
    pub size: (usize, usize),
    /// Stride `(vertical, horizontal)`; Keras's default is the window size.
    pub stride: (usize, usize),
    /// Border handling.
    pub padding: Padding,
}

/// Inverted dropout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutSpec {
    /// The fraction of inputs zeroed in training, in `[0, 1)`.
    pub rate: f32,
}

/// One layer of a model, with its arguments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerSpec {
    /// See [`DenseSpec`].
    Dense(DenseSpec),
    /// See [`Conv2dSpec`].
    Conv2d(Conv2dSpec),
    /// Max pooling; see [`Pool2dSpec`].
    MaxPool2d(Pool2dSpec),
    /// Average pooling; see [`Pool2dSpec`]. With `same` padding the border windows
    /// average over the cells inside the input only, as in Keras.
    AvgPool2d(Pool2dSpec),
    /// Average over height and width: `[h, w, c]` to `[c]`.
    GlobalAvgPool2d,
    /// Any shape to rank 1, in row-major order (the memory does not move).
    Flatten,
    /// See [`DropoutSpec`].
    Dropout(DropoutSpec),
    /// An activation as a layer of its own (`act: Relu`).
    Activation(Activation),
}

impl LayerSpec {
    /// The layer's kind, as written in `model!`: `Conv2d`, `Dense`, `Relu`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dense(_) => "Dense",
            Self::Conv2d(_) => "Conv2d",
            Self::MaxPool2d(_) => "MaxPool2d",
            Self::AvgPool2d(_) => "AvgPool2d",
            Self::GlobalAvgPool2d => "GlobalAvgPool2d",
            Self::Flatten => "Flatten",
            Self::Dropout(_) => "Dropout",
            Self::Activation(a) => match a {
                Activation::Linear => "Linear",
                Activation::Relu => "Relu",
                Activation::LeakyRelu { .. } => "LeakyRelu",
                Activation::Sigmoid => "Sigmoid",
                Activation::Tanh => "Tanh",
                Activation::Gelu => "Gelu",
                Activation::Softmax => "Softmax",
            },
        }
    }

    /// The activation applied at the layer's output, if any ([`Activation::Linear`]
    /// counts as none).
    pub fn activation(&self) -> Option<Activation> {
        let act = match self {
            Self::Dense(d) => d.activation,
            Self::Conv2d(c) => c.activation,
            Self::Activation(a) => *a,
            _ => return None,
        };
        (act != Activation::Linear).then_some(act)
    }

    /// Checks the arguments alone (no shapes): counts at least 1, rates in range.
    /// Returns every problem, not only the first.
    pub fn validate(&self) -> Vec<SpecError> {
        let mut errors = Vec::new();
        let mut at_least_one = |argument: &'static str, value: usize| {
            if value == 0 {
                errors.push(SpecError {
                    argument,
                    message: "must be at least 1, got 0".to_string(),
                });
            }
        };
        match self {
            Self::Dense(d) => at_least_one("units", d.units),
            Self::Conv2d(c) => {
                at_least_one("filters", c.filters);
                at_least_one("kernel", c.kernel.0.min(c.kernel.1));
                at_least_one("stride", c.stride.0.min(c.stride.1));
            }
            Self::MaxPool2d(p) | Self::AvgPool2d(p) => {
                at_least_one("size", p.size.0.min(p.size.1));
                at_least_one("stride", p.stride.0.min(p.stride.1));
            }
            Self::Dropout(d) => {
                if !(d.rate >= 0.0 && d.rate < 1.0) {
                    errors.push(SpecError {
                        argument: "rate",
                        message: format!("must be in [0, 1), got {:?}", d.rate),
                    });
                }
            }
            Self::GlobalAvgPool2d | Self::Flatten | Self::Activation(_) => {}
        }
        if let Some(Err(e)) = self.activation().map(|act| act.validate()) {
            errors.push(e);
        }
        errors
    }

    /// The output shape for one sample of shape `input`.
    pub fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        if input.checked_size().is_none() {
            return Err(ShapeError::new(
                "an input whose size fits in memory",
                *input,
            ));
        }
        let output = match self {
            Self::Dense(d) => rules::dense(d, input),
            Self::Conv2d(c) => rules::conv2d(c, input),
            Self::MaxPool2d(p) | Self::AvgPool2d(p) => rules::pool2d(p, input),
            Self::GlobalAvgPool2d => rules::global_pool2d(input),
            Self::Flatten => Ok(rules::flatten(input)),
            Self::Dropout(_) | Self::Activation(_) => rules::elementwise(input),
        }?;
        if output.checked_size().is_none() {
            return Err(ShapeError::new(
                "arguments whose output size fits in memory",
                *input,
            ));
        }
        Ok(output)
    }

    /// The number of trainable parameters for an input of shape `input`.
    ///
    /// Meaningful only when [`LayerSpec::output_shape`] accepts `input`.
    pub fn parameter_count(&self, input: &Shape) -> usize {
        match self {
            Self::Dense(d) => input.size().saturating_mul(d.units).saturating_add(d.units),
            Self::Conv2d(c) => {
                let channels = input.as_image().map_or(0, |(_, _, ch)| ch);
                c.kernel
                    .0
                    .saturating_mul(c.kernel.1)
                    .saturating_mul(channels)
                    .saturating_mul(c.filters)
                    .saturating_add(c.filters)
            }
            _ => 0,
        }
    }
}
