//! The shape rules, one function per layer kind.

use crate::{Conv2dSpec, DenseSpec, Padding, Pool2dSpec, Shape, ShapeError};

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

fn image(input: &Shape, layer_needs: &str) -> Result<(usize, usize, usize), ShapeError> {
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

fn window_2d(
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

pub(crate) fn dense(spec: &DenseSpec, input: &Shape) -> Result<Shape, ShapeError> {
    if input.rank() != 1 {
        let err = ShapeError::new("a rank-1 input", *input);
        return Err(if input.rank() > 1 {
            err.hint("insert `Flatten` (or `GlobalAvgPool2d`) before it")
        } else {
            err
        });
    }
    Ok(Shape::new(&[spec.units]))
}

pub(crate) fn conv2d(spec: &Conv2dSpec, input: &Shape) -> Result<Shape, ShapeError> {
    let (h, w, _) = image(input, "Conv2d works on images")?;
    let (oh, ow) = window_2d(
        input,
        (h, w),
        spec.kernel,
        spec.stride,
        spec.padding,
        "kernel",
    )?;
    Ok(Shape::new(&[oh, ow, spec.filters]))
}

pub(crate) fn pool2d(spec: &Pool2dSpec, input: &Shape) -> Result<Shape, ShapeError> {
    let (h, w, c) = image(input, "pooling works on images")?;
    let (oh, ow) = window_2d(
        input,
        (h, w),
        spec.size,
        spec.stride,
        spec.padding,
        "pooling window",
    )?;
    Ok(Shape::new(&[oh, ow, c]))
}

pub(crate) fn global_pool2d(input: &Shape) -> Result<Shape, ShapeError> {
    let (_, _, c) = image(input, "global pooling works on images")?;
    Ok(Shape::new(&[c]))
}

pub(crate) fn flatten(input: &Shape) -> Shape {
    Shape::new(&[input.size()])
}

pub(crate) fn elementwise(input: &Shape) -> Result<Shape, ShapeError> {
    if input.rank() == 0 {
        return Err(ShapeError::new("an input of rank 1 or more", *input));
    }
    Ok(*input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, LayerSpec};

    fn conv(filters: usize, k: usize, s: usize, padding: Padding) -> LayerSpec {
        LayerSpec::Conv2d(Conv2dSpec {
            filters,
            kernel: (k, k),
            stride: (s, s),
            padding,
            activation: Activation::Relu,
        })
    }

    fn pool(k: usize) -> LayerSpec {
        LayerSpec::MaxPool2d(Pool2dSpec {
            size: (k, k),
            stride: (k, k),
            padding: Padding::Valid,
        })
    }

    #[test]
    fn seed_cnn_shapes_and_parameters() {
        let dense = |units| {
            LayerSpec::Dense(DenseSpec {
                units,
                activation: Activation::Relu,
            })
        };
        let layers = [
            conv(32, 3, 1, Padding::Valid),
            pool(2),
            conv(64, 3, 1, Padding::Valid),
            pool(2),
            conv(128, 3, 1, Padding::Valid),
            pool(2),
            LayerSpec::Flatten,
            dense(128),
            dense(10),
        ];
        let expected: [&[usize]; 9] = [
            &[30, 30, 32],
            &[15, 15, 32],
            &[13, 13, 64],
            &[6, 6, 64],
            &[4, 4, 128],
            &[2, 2, 128],
            &[512],
            &[128],
            &[10],
        ];
        let mut shape = Shape::new(&[32, 32, 3]);
        let mut params = 0;
        for (layer, want) in layers.iter().zip(expected) {
            params += layer.parameter_count(&shape);
            shape = layer.output_shape(&shape).unwrap();
            assert_eq!(shape.dims(), want);
        }
        assert_eq!(params, 160_202);
    }

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
    fn dense_after_an_image_asks_for_flatten() {
        let err = LayerSpec::Dense(DenseSpec {
            units: 128,
            activation: Activation::Relu,
        })
        .output_shape(&Shape::new(&[2, 2, 128]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "expects a rank-1 input but gets [2, 2, 128]: insert `Flatten` (or `GlobalAvgPool2d`) before it"
        );
    }

    #[test]
    fn kernel_larger_than_input_is_an_error() {
        let err = conv(8, 5, 1, Padding::Valid)
            .output_shape(&Shape::new(&[4, 4, 3]))
            .unwrap_err();
        assert!(err.to_string().contains("at least 5x5"), "{err}");
        assert_eq!(
            conv(8, 5, 1, Padding::Same)
                .output_shape(&Shape::new(&[4, 4, 3]))
                .unwrap(),
            Shape::new(&[4, 4, 8])
        );
    }

    #[test]
    fn invalid_arguments_are_all_reported() {
        assert_eq!(conv(0, 0, 1, Padding::Valid).validate().len(), 2);
        let bad_rate = LayerSpec::Dropout(crate::DropoutSpec { rate: 1.0 });
        assert_eq!(
            bad_rate.validate()[0].to_string(),
            "`rate` must be in [0, 1), got 1.0"
        );
        assert!(
            LayerSpec::Dropout(crate::DropoutSpec { rate: 0.5 })
                .validate()
                .is_empty()
        );
    }
}
