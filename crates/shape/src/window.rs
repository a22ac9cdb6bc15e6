//! Sliding windows over images: the geometry that convolutions and pooling share.

use crate::kind::RustLiteral;
use crate::{Shape, ShapeError};

/// How a convolution or pooling window treats the border, as in Keras.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: the window stays inside the input.
    Valid,
    /// Zero padding so that the output is `ceil(input / stride)`; the extra row or
    /// column, when the total is odd, goes at the bottom and right (TensorFlow's rule).
    Same,
}

impl Padding {
    /// The identifier, as written in `model!`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Same => "same",
        }
    }

    /// The padding named by a `model!` identifier.
    pub fn from_ident(name: &str) -> Option<Self> {
        match name {
            "valid" => Some(Self::Valid),
            "same" => Some(Self::Same),
            _ => None,
        }
    }

    /// Every identifier [`Padding::from_ident`] accepts.
    pub const IDENTS: &'static [&'static str] = &["valid", "same"];
}

impl RustLiteral for Padding {
    fn rust(&self) -> String {
        match self {
            Self::Valid => "::kiln::shape::Padding::Valid".into(),
            Self::Same => "::kiln::shape::Padding::Same".into(),
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
        Padding::Same => Some(input.div_ceil(stride)),
    }
}

/// Zero rows (or columns) added before the input with `same` padding: half the total,
/// rounded down, as TensorFlow does. `valid` padding adds none.
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
    }
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
}
