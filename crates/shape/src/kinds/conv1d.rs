//! `Conv1d(filters, kernel, activation)`: the 1-D convolution of sequences.

use super::dense::product_traits;
use crate::kind::{ArgDef, ArgType, Args, LayerKind, Spec, Traits, at_least_one, struct_literal};
use crate::window::{sequence, window_1d};
use crate::{Activation, Padding, Shape, ShapeError, SpecError};

/// A 1-D convolution on a `[time, features]` input (Keras's `Conv1D`, NLC).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv1dSpec {
    /// Output channels.
    pub filters: usize,
    /// Taps of the kernel.
    pub kernel: usize,
    /// Steps between two outputs' windows.
    pub stride: usize,
    /// Steps between two taps of the kernel (1: adjacent).
    pub dilation: usize,
    /// Border handling: `valid`, `same` or `causal`.
    pub padding: Padding,
    /// Applied to the convolution's output.
    pub activation: Activation,
}

impl Conv1dSpec {
    /// Time steps one window spans: `dilation * (kernel - 1) + 1`.
    pub fn span(&self) -> usize {
        self.kernel
            .saturating_sub(1)
            .saturating_mul(self.dilation)
            .saturating_add(1)
    }
}

/// `Conv1d`.
pub static CONV1D: LayerKind = LayerKind {
    name: "Conv1d",
    aliases: &["Conv1D", "Convolution1D"],
    about: "a 1-D convolution of sequences, NLC; `causal` padding and dilation",
    args: &[
        ArgDef::required("filters", ArgType::Count).aliases(&["out_channels"]),
        ArgDef::required("kernel", ArgType::Count).aliases(&["kernel_size"]),
        ArgDef::optional("activation", ArgType::Activation, "linear"),
        ArgDef::optional("stride", ArgType::Count, "1")
            .named_only()
            .aliases(&["strides"]),
        ArgDef::optional("dilation", ArgType::Count, "1")
            .named_only()
            .aliases(&["dilation_rate"]),
        ArgDef::optional("padding", ArgType::Padding, "valid").named_only(),
    ],
    runtime: "::kiln::nn::layers::conv1d::Conv1d<B>",
    spec: conv1d_from,
};

fn conv1d_from(args: &Args) -> Box<dyn Spec> {
    Box::new(Conv1dSpec {
        filters: args.count("filters").unwrap_or(0),
        kernel: args.count("kernel").unwrap_or(0),
        stride: args.count("stride").unwrap_or(1),
        dilation: args.count("dilation").unwrap_or(1),
        padding: args.padding("padding"),
        activation: args.activation("activation"),
    })
}

impl Spec for Conv1dSpec {
    fn kind_name(&self) -> &'static str {
        CONV1D.name
    }

    fn validate(&self) -> Vec<SpecError> {
        let mut errors = Vec::new();
        at_least_one(&mut errors, "filters", self.filters);
        at_least_one(&mut errors, "kernel", self.kernel);
        at_least_one(&mut errors, "stride", self.stride);
        at_least_one(&mut errors, "dilation", self.dilation);
        errors.extend(self.activation.check().err());
        errors
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let (time, _) = sequence(input, "Conv1d works on sequences")?;
        let out = window_1d(
            input,
            time,
            (self.kernel, self.dilation, self.stride),
            self.padding,
            "kernel",
        )?;
        Ok(Shape::new(&[out, self.filters]))
    }

    fn parameter_count(&self, input: &Shape) -> Option<usize> {
        let features = input.dim(1).unwrap_or(0);
        self.kernel
            .checked_mul(features)?
            .checked_mul(self.filters)?
            .checked_add(self.filters)
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn traits(&self) -> Traits {
        product_traits(self.activation)
    }

    fn rust(&self) -> String {
        struct_literal(
            "::kiln::shape::Conv1dSpec",
            &[
                ("filters", &self.filters),
                ("kernel", &self.kernel),
                ("stride", &self.stride),
                ("dilation", &self.dilation),
                ("padding", &self.padding),
                ("activation", &self.activation),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(kernel: usize, stride: usize, dilation: usize, padding: Padding) -> Conv1dSpec {
        Conv1dSpec {
            filters: 8,
            kernel,
            stride,
            dilation,
            padding,
            activation: Activation::Relu,
        }
    }

    #[test]
    fn output_lengths_follow_keras() {
        let seq = Shape::new(&[20, 3]);
        let len = |spec: Conv1dSpec| spec.output_shape(&seq).unwrap().dims()[0];
        // Keras: valid (20 - 5) / 2 + 1, same and causal ceil(20 / stride).
        assert_eq!(len(conv(5, 2, 1, Padding::Valid)), 8);
        assert_eq!(len(conv(5, 1, 3, Padding::Valid)), 8);
        assert_eq!(len(conv(5, 3, 1, Padding::Same)), 7);
        assert_eq!(len(conv(3, 1, 4, Padding::Causal)), 20);
        assert_eq!(
            conv(5, 1, 1, Padding::Same).parameter_count(&seq),
            Some(128)
        );
    }

    #[test]
    fn a_kernel_longer_than_the_sequence_is_an_error() {
        let err = conv(5, 1, 1, Padding::Valid)
            .output_shape(&Shape::new(&[4, 2]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "expects a sequence of at least 5 time steps (its kernel) but gets [4, 2]: \
             use a smaller window, `padding = same` or `causal`, or less pooling before it"
        );
        let err = conv(3, 1, 1, Padding::Valid)
            .output_shape(&Shape::new(&[8, 8, 3]))
            .unwrap_err();
        assert!(
            err.to_string().contains("rank-2 input [time, features]"),
            "{err}"
        );
    }

    #[test]
    fn invalid_arguments_are_all_reported() {
        assert_eq!(conv(0, 0, 0, Padding::Valid).validate().len(), 3);
    }

    #[test]
    fn the_spec_reads_back_as_rust() {
        assert_eq!(
            conv(3, 1, 2, Padding::Causal).rust(),
            "::kiln::shape::Conv1dSpec { filters: 8usize, kernel: 3usize, stride: 1usize, \
             dilation: 2usize, padding: ::kiln::shape::Padding::Causal, \
             activation: ::kiln::shape::Activation::Relu }"
        );
    }
}
