//! `MaxPool2d(size, stride)` and `AvgPool2d(size, stride)`: pooling windows over
//! images.

use crate::kind::{ArgDef, ArgType, Args, LayerKind, Spec, Traits, at_least_one, struct_literal};
use crate::window::{check_not_causal, image, window_2d};
use crate::{Padding, Shape, ShapeError, SpecError};

/// What a pooling window computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    /// The largest value (the first one on ties, which also receives the gradient).
    Max,
    /// The mean over the window's cells inside the input (padding excluded, as Keras).
    Avg,
}

/// A 2-D pooling window (max or average).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dSpec {
    /// Max or average.
    pub mode: PoolMode,
    /// Window `(height, width)`.
    pub size: (usize, usize),
    /// Stride `(vertical, horizontal)`; Keras's default is the window size.
    pub stride: (usize, usize),
    /// Border handling.
    pub padding: Padding,
}

const POOL_ARGS: &[ArgDef] = &[
    ArgDef::required("size", ArgType::Size).aliases(&["pool_size", "kernel_size"]),
    ArgDef::optional("stride", ArgType::Size, "size").aliases(&["strides"]),
    ArgDef::optional("padding", ArgType::Padding, "valid").named_only(),
];

/// `MaxPool2d`.
pub static MAX_POOL2D: LayerKind = LayerKind {
    name: "MaxPool2d",
    aliases: &["MaxPooling2D", "MaxPool2D"],
    about: "the largest value of each window",
    args: POOL_ARGS,
    runtime: "::kiln::nn::layers::pool2d::Pool2d<B>",
    spec: |args| Box::new(pool_from(PoolMode::Max, args)),
};

/// `AvgPool2d`.
pub static AVG_POOL2D: LayerKind = LayerKind {
    name: "AvgPool2d",
    aliases: &["AveragePooling2D", "AvgPool2D"],
    about: "the mean of each window (with `same` padding, of its cells inside the input)",
    args: POOL_ARGS,
    runtime: "::kiln::nn::layers::pool2d::Pool2d<B>",
    spec: |args| Box::new(pool_from(PoolMode::Avg, args)),
};

fn pool_from(mode: PoolMode, args: &Args) -> Pool2dSpec {
    let size = args.size("size").unwrap_or((0, 0));
    Pool2dSpec {
        mode,
        size,
        stride: args.size("stride").unwrap_or(size),
        padding: args.padding("padding"),
    }
}

impl Spec for Pool2dSpec {
    fn kind_name(&self) -> &'static str {
        match self.mode {
            PoolMode::Max => MAX_POOL2D.name,
            PoolMode::Avg => AVG_POOL2D.name,
        }
    }

    fn validate(&self) -> Vec<SpecError> {
        let mut errors = Vec::new();
        at_least_one(&mut errors, "size", self.size.0.min(self.size.1));
        at_least_one(&mut errors, "stride", self.stride.0.min(self.stride.1));
        check_not_causal(&mut errors, self.padding);
        errors
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let (h, w, c) = image(input, "pooling works on images")?;
        let (oh, ow) = window_2d(
            input,
            (h, w),
            self.size,
            self.stride,
            self.padding,
            "pooling window",
        )?;
        Ok(Shape::new(&[oh, ow, c]))
    }

    fn traits(&self) -> Traits {
        // The backward op takes the forward's input and output (a GPU finds each
        // window's maximum again from them).
        Traits {
            reads_input: true,
            reads_output: true,
            absorbs_relu_below: self.mode == PoolMode::Max,
            ..Traits::default()
        }
    }

    fn rust(&self) -> String {
        let mode = match self.mode {
            PoolMode::Max => "::kiln::shape::PoolMode::Max",
            PoolMode::Avg => "::kiln::shape::PoolMode::Avg",
        };
        struct_literal(
            "::kiln::shape::Pool2dSpec",
            &[
                ("mode", &Raw(mode)),
                ("size", &self.size),
                ("stride", &self.stride),
                ("padding", &self.padding),
            ],
        )
    }
}

/// A path written as it is.
struct Raw(&'static str);

impl crate::kind::RustLiteral for Raw {
    fn rust(&self) -> String {
        self.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stride_defaults_to_the_window() {
        let spec = pool_from(
            PoolMode::Max,
            &Args::new().with("size", crate::ArgValue::Size((3, 3))),
        );
        assert_eq!(spec.stride, (3, 3));
        assert_eq!(spec.padding, Padding::Valid);
        assert_eq!(
            spec.output_shape(&Shape::new(&[7, 7, 2])).unwrap(),
            Shape::new(&[2, 2, 2])
        );
    }

    #[test]
    fn a_window_larger_than_the_input_is_an_error() {
        let spec = pool_from(
            PoolMode::Avg,
            &Args::new().with("size", crate::ArgValue::Size((4, 4))),
        );
        let err = spec.output_shape(&Shape::new(&[3, 3, 1])).unwrap_err();
        assert!(
            err.to_string()
                .contains("at least 4x4 (its pooling window)"),
            "{err}"
        );
    }
}
