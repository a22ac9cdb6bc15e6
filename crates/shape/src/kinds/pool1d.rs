//! `MaxPool1d(size, stride)` over sequences, and `GlobalAvgPool1d` /
//! `GlobalMaxPool1d`, the mean or the largest value of each feature over time.

use crate::kind::{ArgDef, ArgType, Args, LayerKind, Spec, Traits, at_least_one, struct_literal};
use crate::window::{sequence, window_1d};
use crate::{Padding, PoolMode, Shape, ShapeError, SpecError};

/// The largest value of each window of time steps, per feature (Keras's
/// `MaxPooling1D`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool1dSpec {
    /// Time steps a window covers.
    pub size: usize,
    /// Steps between windows; Keras's default is the window size.
    pub stride: usize,
    /// `valid` or `same`.
    pub padding: Padding,
}

/// `MaxPool1d`.
pub static MAX_POOL1D: LayerKind = LayerKind {
    name: "MaxPool1d",
    aliases: &["MaxPooling1D", "MaxPool1D"],
    about: "the largest value of each window of time steps",
    args: &[
        ArgDef::required("size", ArgType::Count).aliases(&["pool_size", "kernel_size"]),
        ArgDef::optional("stride", ArgType::Count, "size").aliases(&["strides"]),
        ArgDef::optional("padding", ArgType::Padding, "valid").named_only(),
    ],
    runtime: "::kiln::nn::layers::pool1d::MaxPool1d<B>",
    spec: max_pool1d_from,
};

fn max_pool1d_from(args: &Args) -> Box<dyn Spec> {
    let size = args.count("size").unwrap_or(0);
    Box::new(MaxPool1dSpec {
        size,
        stride: args.count("stride").unwrap_or(size),
        padding: args.padding("padding"),
    })
}

/// Traits of max pooling: the backward op reads the forward's input and output (a GPU
/// finds each window's maximum again from them), and routes the gradient only where
/// a maximum is positive when a ReLU is below.
fn max_traits() -> Traits {
    Traits {
        reads_input: true,
        reads_output: true,
        absorbs_relu_below: true,
        ..Traits::default()
    }
}

impl Spec for MaxPool1dSpec {
    fn kind_name(&self) -> &'static str {
        MAX_POOL1D.name
    }

    fn validate(&self) -> Vec<SpecError> {
        let mut errors = Vec::new();
        at_least_one(&mut errors, "size", self.size);
        at_least_one(&mut errors, "stride", self.stride);
        if self.padding == Padding::Causal {
            errors.push(SpecError {
                argument: "padding",
                message: "takes `valid` or `same`; `causal` is for convolutions".to_string(),
            });
        }
        errors
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let (time, features) = sequence(input, "MaxPool1d works on sequences")?;
        let out = window_1d(
            input,
            time,
            (self.size, 1, self.stride),
            self.padding,
            "pooling window",
        )?;
        Ok(Shape::new(&[out, features]))
    }

    fn traits(&self) -> Traits {
        max_traits()
    }

    fn rust(&self) -> String {
        struct_literal(
            "::kiln::shape::MaxPool1dSpec",
            &[
                ("size", &self.size),
                ("stride", &self.stride),
                ("padding", &self.padding),
            ],
        )
    }
}

/// The mean or the largest value of each feature over all time steps: `[time,
/// features]` to `[features]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalPool1dSpec {
    /// Mean or maximum.
    pub mode: PoolMode,
}

/// `GlobalAvgPool1d`.
pub static GLOBAL_AVG_POOL1D: LayerKind = LayerKind {
    name: "GlobalAvgPool1d",
    aliases: &["GlobalAveragePooling1D", "GlobalAvgPool1D"],
    about: "the mean of each feature over time: `[time, features]` to `[features]`",
    args: &[],
    runtime: "::kiln::nn::layers::pool1d::GlobalPool1d<B>",
    spec: |_| {
        Box::new(GlobalPool1dSpec {
            mode: PoolMode::Avg,
        })
    },
};

/// `GlobalMaxPool1d`.
pub static GLOBAL_MAX_POOL1D: LayerKind = LayerKind {
    name: "GlobalMaxPool1d",
    aliases: &["GlobalMaxPooling1D", "GlobalMaxPool1D"],
    about: "the largest value of each feature over time: `[time, features]` to `[features]`",
    args: &[],
    runtime: "::kiln::nn::layers::pool1d::GlobalPool1d<B>",
    spec: |_| {
        Box::new(GlobalPool1dSpec {
            mode: PoolMode::Max,
        })
    },
};

impl Spec for GlobalPool1dSpec {
    fn kind_name(&self) -> &'static str {
        match self.mode {
            PoolMode::Avg => GLOBAL_AVG_POOL1D.name,
            PoolMode::Max => GLOBAL_MAX_POOL1D.name,
        }
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let (time, features) = sequence(input, "global pooling over time works on sequences")?;
        if time == 0 {
            return Err(ShapeError::new("at least one time step", *input));
        }
        Ok(Shape::new(&[features]))
    }

    fn traits(&self) -> Traits {
        match self.mode {
            PoolMode::Max => max_traits(),
            // Average pooling's backward op takes the forward's input and output too.
            PoolMode::Avg => Traits {
                reads_input: true,
                reads_output: true,
                ..Traits::default()
            },
        }
    }

    fn rust(&self) -> String {
        let mode = match self.mode {
            PoolMode::Max => "Max",
            PoolMode::Avg => "Avg",
        };
        format!("::kiln::shape::GlobalPool1dSpec {{ mode: ::kiln::shape::PoolMode::{mode} }}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ArgValue;

    #[test]
    fn the_stride_defaults_to_the_window() {
        let spec = max_pool1d_from(&Args::new().with("size", ArgValue::Count(3)));
        assert_eq!(
            spec.output_shape(&Shape::new(&[10, 4])).unwrap(),
            Shape::new(&[3, 4])
        );
        assert!(spec.rust().contains("stride: 3usize"), "{}", spec.rust());
        let same = MaxPool1dSpec {
            size: 3,
            stride: 2,
            padding: Padding::Same,
        };
        assert_eq!(
            same.output_shape(&Shape::new(&[9, 4])).unwrap(),
            Shape::new(&[5, 4])
        );
        let causal = MaxPool1dSpec {
            padding: Padding::Causal,
            ..same
        };
        assert_eq!(causal.validate().len(), 1);
    }

    #[test]
    fn a_window_longer_than_the_sequence_is_an_error() {
        let err = max_pool1d_from(&Args::new().with("size", ArgValue::Count(6)))
            .output_shape(&Shape::new(&[5, 2]))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("at least 6 time steps (its pooling window)"),
            "{err}"
        );
    }

    #[test]
    fn global_pooling_drops_the_time_axis() {
        for mode in [PoolMode::Avg, PoolMode::Max] {
            let spec = GlobalPool1dSpec { mode };
            assert_eq!(
                spec.output_shape(&Shape::new(&[7, 5])).unwrap(),
                Shape::new(&[5])
            );
            let err = spec.output_shape(&Shape::new(&[4, 4, 2])).unwrap_err();
            assert!(err.to_string().contains("Conv2d"), "{err}");
        }
    }
}
