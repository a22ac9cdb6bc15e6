//! Sliding windows over images and sequences: the geometry that convolutions and
//! pooling share.

use crate::kind::RustLiteral;
use crate::{Shape, ShapeError};

/// How a convolution or pooling window treats the border, as in Keras.
///
/// With a dilation, `kernel` below is the span of the dilated window,
/// `dilation * (taps - 1) + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: the window stays inside the input.
    Valid,
    /// Zero padding so that the output is `ceil(input / stride)`; the extra row or
    /// column, when the total is odd, goes at the bottom and right (TensorFlow's rule).
    Same,
    /// Sequences only (`Conv1d`): `kernel - 1` zero steps before the sequence and none
    /// after, so that output step `t` sees inputs up to `t` and never later ones.
    Causal,
}

impl Padding {
    /// The identifier, as written in `model!`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Same => "same",
            Self::Causal => "causal",
        }
    }

    /// The padding named by a `model!` identifier.
    pub fn from_ident(name: &str) -> Option<Self> {
        match name {
            "valid" => Some(Self::Valid),
            "same" => Some(Self::Same),
            "causal" => Some(Self::Causal),
            _ => None,
        }
    }

    /// Every identifier [`Padding::from_ident`] accepts.
    pub const IDENTS: &'static [&'static str] = &["valid", "same", "causal"];
}

impl RustLiteral for Padding {
    fn rust(&self) -> String {
        match self {
            Self::Valid => "::kiln::shape::Padding::Valid".into(),
            Self::Same => "::kiln::shape::Padding::Same".into(),
            Self::Causal => "::kiln::shape::Padding::Causal".into(),
        }
    }
}

/// Output length along one axis of a window of `kernel` moved by `stride` over `input`
/// cells, or `None` when a `valid` window does not fit.
pub const fn conv_output_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: Padding,
) -> Option<usize> {
    if stride == 0 || kernel == 0 {
        return None;
    }
    match padding {
        Padding::Valid => {
            if kernel > input {
                None
            } else {
                Some((input - kernel) / stride + 1)
            }
        }
        Padding::Same | Padding::Causal => Some(input.div_ceil(stride)),
    }
}

/// Zero rows (or columns, or time steps) added before the input: with `same` padding
/// half the total, rounded down, as TensorFlow does; with `causal` padding
/// `kernel - 1`. `valid` padding adds none.
pub const fn same_padding_before(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: Padding,
) -> usize {
    match padding {
        Padding::Valid => 0,
        Padding::Same => {
            let out = input.div_ceil(stride);
            let needed = (out - 1) * stride + kernel;
            needed.saturating_sub(input) / 2
        }
        Padding::Causal => kernel.saturating_sub(1),
    }
}

/// The problem with a padding that only sequences take, for the kinds of images.
pub(crate) fn check_not_causal(errors: &mut Vec<crate::SpecError>, padding: Padding) {
    if padding == Padding::Causal {
        errors.push(crate::SpecError {
            argument: "padding",
            message: "takes `valid` or `same` on images; `causal` is for sequences (`Conv1d`)"
                .to_string(),
        });
    }
}

/// `(time, features)` of a sequence input, or the error of a layer that needs one
/// (`layer_needs` says why: "Conv1d works on sequences").
pub(crate) fn sequence(input: &Shape, layer_needs: &str) -> Result<(usize, usize), ShapeError> {
    match input.dims() {
        &[time, features] => Ok((time, features)),
        _ => {
            let err = ShapeError::new(
                format!("a rank-2 input [time, features] ({layer_needs})"),
                *input,
            );
            Err(match input.rank() {
                3 => err.hint("an image takes `Conv2d` and 2-D pooling"),
                1 => err.hint("a vector has no time axis"),
                _ => err,
            })
        }
    }
}

/// The output length of a `kernel`-tap window with `dilation` moved by `stride` over
/// `time` steps, or the error when a `valid` window does not fit (`what` names the
/// window: "kernel", "pooling window").
pub(crate) fn window_1d(
    input: &Shape,
    time: usize,
    (kernel, dilation, stride): (usize, usize, usize),
    padding: Padding,
    what: &str,
) -> Result<usize, ShapeError> {
    let span = kernel
        .saturating_sub(1)
        .saturating_mul(dilation)
        .saturating_add(1);
    conv_output_len(time, span, stride, padding).ok_or_else(|| {
        let window = if dilation > 1 {
            format!("its {what} of {kernel} with dilation {dilation}")
        } else {
            format!("its {what}")
        };
        ShapeError::new(
            format!("a sequence of at least {span} time steps ({window})"),
            *input,
        )
        .hint("use a smaller window, `padding = same` or `causal`, or less pooling before it")
    })
}

/// `(height, width, channels)` of an image input, or the error of a layer that needs
/// one (`layer_needs` says why: "Conv2d works on images").
pub(crate) fn image(input: &Shape, layer_needs: &str) -> Result<(usize, usize, usize), ShapeError> {
    input.as_image().ok_or_else(|| {
        let err = ShapeError::new(
            format!("a rank-3 input [height, width, channels] ({layer_needs})"),
            *input,
        );
        if input.rank() == 1 {
            err.hint("images must keep their rank-3 shape up to `Flatten`")
        } else {
            err
        }
    })
}

/// The output height and width of a `kernel` window moved by `stride` over the
/// `h x w` image `input`, or the error when a `valid` window does not fit (`what`
/// names the window: "kernel", "pooling window").
pub(crate) fn window_2d(
    input: &Shape,
    (h, w): (usize, usize),
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
    what: &str,
) -> Result<(usize, usize), ShapeError> {
    let oh = conv_output_len(h, kernel.0, stride.0, padding);
    let ow = conv_output_len(w, kernel.1, stride.1, padding);
    match (oh, ow) {
        (Some(oh), Some(ow)) => Ok((oh, ow)),
        _ => Err(ShapeError::new(
            format!(
                "an input of at least {}x{} (its {what})",
                kernel.0, kernel.1
            ),
            *input,
        )
        .hint("use a smaller window, `padding = same`, or less pooling before it")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        // out = ceil(in / stride); total padding split with the extra at the end.
        assert_eq!(conv_output_len(7, 3, 2, Padding::Same), Some(4));
        assert_eq!(same_padding_before(7, 3, 2, Padding::Same), 1);
        assert_eq!(conv_output_len(8, 3, 2, Padding::Same), Some(4));
        assert_eq!(same_padding_before(8, 3, 2, Padding::Same), 0);
        assert_eq!(same_padding_before(5, 4, 1, Padding::Same), 1);
        assert_eq!(conv_output_len(7, 3, 2, Padding::Valid), Some(3));
        assert_eq!(conv_output_len(2, 3, 1, Padding::Valid), None);
    }

    #[test]
    fn causal_padding_is_all_before() {
        // Keras: `causal` pads `dilation * (kernel - 1)` steps on the left only.
        assert_eq!(conv_output_len(10, 5, 1, Padding::Causal), Some(10));
        assert_eq!(same_padding_before(10, 5, 1, Padding::Causal), 4);
        assert_eq!(conv_output_len(10, 3, 2, Padding::Causal), Some(5));
        let seq = Shape::new(&[4, 2]);
        assert_eq!(
            window_1d(&seq, 4, (3, 2, 1), Padding::Causal, "kernel"),
            Ok(4)
        );
        let err = window_1d(&seq, 4, (3, 2, 1), Padding::Valid, "kernel").unwrap_err();
        assert!(
            err.to_string()
                .contains("at least 5 time steps (its kernel of 3 with dilation 2)"),
            "{err}"
        );
    }
}
