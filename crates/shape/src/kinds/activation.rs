//! The activation layers: `Relu`, `LeakyRelu(negative_slope)`, `Sigmoid`, `Tanh`,
//! `Gelu`, `Softmax`. Their spec is the [`Activation`] itself.

use crate::kind::{ArgDef, ArgType, LayerKind, RustLiteral, Spec, Traits};
use crate::{Activation, Shape, ShapeError, SpecError};

const RUNTIME: &str = "::kiln::nn::layers::activation::ActivationLayer";

/// `Relu`.
pub static RELU: LayerKind = LayerKind {
    name: "Relu",
    aliases: &["ReLU"],
    about: "`max(x, 0)`",
    args: &[],
    runtime: RUNTIME,
    spec: |_| Box::new(Activation::Relu),
};

/// `LeakyRelu`.
pub static LEAKY_RELU: LayerKind = LayerKind {
    name: "LeakyRelu",
    aliases: &["LeakyReLU"],
    about: "`x`, or `negative_slope * x` below zero",
    args: &[ArgDef::optional("negative_slope", ArgType::Number, "0.3").aliases(&["alpha"])],
    runtime: RUNTIME,
    spec: |args| {
        Box::new(Activation::LeakyRelu {
            negative_slope: args
                .number("negative_slope")
                .unwrap_or(Activation::LEAKY_RELU_LAYER_SLOPE),
        })
    },
};

/// `Sigmoid`.
pub static SIGMOID: LayerKind = LayerKind {
    name: "Sigmoid",
    aliases: &[],
    about: "`1 / (1 + exp(-x))`",
    args: &[],
    runtime: RUNTIME,
    spec: |_| Box::new(Activation::Sigmoid),
};

/// `Tanh`.
pub static TANH: LayerKind = LayerKind {
    name: "Tanh",
    aliases: &[],
    about: "the hyperbolic tangent",
    args: &[],
    runtime: RUNTIME,
    spec: |_| Box::new(Activation::Tanh),
};

/// `Gelu`.
pub static GELU: LayerKind = LayerKind {
    name: "Gelu",
    aliases: &["GELU"],
    about: "the exact GELU, `x * Phi(x)`",
    args: &[],
    runtime: RUNTIME,
    spec: |_| Box::new(Activation::Gelu),
};

/// `Softmax`.
pub static SOFTMAX: LayerKind = LayerKind {
    name: "Softmax",
    aliases: &["Softmax2d", "LogSoftmax"],
    about: "softmax over the last axis",
    args: &[],
    runtime: RUNTIME,
    spec: |_| Box::new(Activation::Softmax),
};

impl Spec for Activation {
    fn kind_name(&self) -> &'static str {
        match self {
            Activation::Linear => "Linear",
            Activation::Relu => RELU.name,
            Activation::LeakyRelu { .. } => LEAKY_RELU.name,
            Activation::Sigmoid => SIGMOID.name,
            Activation::Tanh => TANH.name,
            Activation::Gelu => GELU.name,
            Activation::Softmax => SOFTMAX.name,
        }
    }

    fn validate(&self) -> Vec<SpecError> {
        self.check().err().into_iter().collect()
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        super::elementwise(input)
    }

    fn activation(&self) -> Activation {
        *self
    }

    fn traits(&self) -> Traits {
        let needs_input = self.backward_needs_input();
        Traits {
            reads_input: needs_input,
            reads_output: !needs_input,
            overwrites_output_grad: true,
            accumulates_input_grad: true,
            ..Traits::default()
        }
    }

    fn rust(&self) -> String {
        RustLiteral::rust(self)
    }
}
