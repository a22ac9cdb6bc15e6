//! `Conv2d(filters, kernel, activation)`: the 2-D convolution.

use super::dense::product_traits;
use crate::kind::{ArgDef, ArgType, Args, LayerKind, Spec, Traits, at_least_one, struct_literal};
use crate::window::{check_not_causal, image, window_2d};
use crate::{Activation, Padding, Shape, ShapeError, SpecError};

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

/// `Conv2d`.
pub static CONV2D: LayerKind = LayerKind {
    name: "Conv2d",
    aliases: &["Conv2D", "Convolution2D"],
    about: "a 2-D convolution of images, NHWC",
    args: &[
        ArgDef::required("filters", ArgType::Count).aliases(&["out_channels"]),
        ArgDef::required("kernel", ArgType::Size).aliases(&["kernel_size"]),
        ArgDef::optional("activation", ArgType::Activation, "linear"),
        ArgDef::optional("stride", ArgType::Size, "1")
            .named_only()
            .aliases(&["strides"]),
        ArgDef::optional("padding", ArgType::Padding, "valid").named_only(),
    ],
    runtime: "::kiln::nn::layers::conv2d::Conv2d<B>",
    spec: conv2d_from,
};

fn conv2d_from(args: &Args) -> Box<dyn Spec> {
    Box::new(Conv2dSpec {
        filters: args.count("filters").unwrap_or(0),
        kernel: args.size("kernel").unwrap_or((0, 0)),
        stride: args.size("stride").unwrap_or((1, 1)),
        padding: args.padding("padding"),
        activation: args.activation("activation"),
    })
}

impl Spec for Conv2dSpec {
    fn kind_name(&self) -> &'static str {
        CONV2D.name
    }

    fn validate(&self) -> Vec<SpecError> {
        let mut errors = Vec::new();
        at_least_one(&mut errors, "filters", self.filters);
        at_least_one(&mut errors, "kernel", self.kernel.0.min(self.kernel.1));
        at_least_one(&mut errors, "stride", self.stride.0.min(self.stride.1));
        check_not_causal(&mut errors, self.padding);
        errors.extend(self.activation.check().err());
        errors
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let (h, w, _) = image(input, "Conv2d works on images")?;
        let (oh, ow) = window_2d(
            input,
            (h, w),
            self.kernel,
            self.stride,
            self.padding,
            "kernel",
        )?;
        Ok(Shape::new(&[oh, ow, self.filters]))
    }

    fn parameter_count(&self, input: &Shape) -> Option<usize> {
        let channels = input.as_image().map_or(0, |(_, _, c)| c);
        self.kernel
            .0
            .checked_mul(self.kernel.1)?
            .checked_mul(channels)?
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
            "::kiln::shape::Conv2dSpec",
            &[
                ("filters", &self.filters),
                ("kernel", &self.kernel),
                ("stride", &self.stride),
                ("padding", &self.padding),
                ("activation", &self.activation),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(filters: usize, k: usize, padding: Padding) -> Conv2dSpec {
        Conv2dSpec {
            filters,
            kernel: (k, k),
            stride: (1, 1),
            padding,
            activation: Activation::Relu,
        }
    }

    #[test]
    fn kernel_larger_than_input_is_an_error() {
        let err = conv(8, 5, Padding::Valid)
            .output_shape(&Shape::new(&[4, 4, 3]))
            .unwrap_err();
        assert!(err.to_string().contains("at least 5x5"), "{err}");
        assert_eq!(
            conv(8, 5, Padding::Same)
                .output_shape(&Shape::new(&[4, 4, 3]))
                .unwrap(),
            Shape::new(&[4, 4, 8])
        );
    }

    #[test]
    fn invalid_arguments_are_all_reported() {
        assert_eq!(conv(0, 0, Padding::Valid).validate().len(), 2);
    }

    #[test]
    fn the_spec_reads_back_as_rust() {
        let spec = Conv2dSpec {
            stride: (2, 1),
            activation: Activation::LeakyRelu {
                negative_slope: -0.25,
            },
            ..conv(32, 3, Padding::Same)
        };
        assert_eq!(
            spec.rust(),
            "::kiln::shape::Conv2dSpec { filters: 32usize, kernel: (3usize, 3usize), \
             stride: (2usize, 1usize), padding: ::kiln::shape::Padding::Same, \
             activation: ::kiln::shape::Activation::LeakyRelu { negative_slope: -0.25f32 } }"
        );
    }
}
