//! The 1-D convolution layer: the 2-D convolution op with time as the height and a
//! width of 1, the dilation spacing the kernel's taps along time.

use kiln_kernels::ops::conv2d::Conv2dParams;
use kiln_shape::{Conv1dSpec, Shape};

use super::conv2d::{ConvKind, Convolution};
use crate::Result;

/// `y = activation(conv(x, W) + b)` over time, with stride, dilation and `valid`,
/// `same` or `causal` padding.
///
/// # Shapes
/// - input: `[batch, time, c_in]` (NLC, Keras's `Conv1D` order; PyTorch's
///   `nn.Conv1d` takes NCL: `x_torch = x_kiln.permute(0, 2, 1)`)
/// - output: `[batch, out, filters]`, with `span = dilation * (kernel - 1) + 1`:
///   `out = (time - span) / stride + 1` with `valid` padding, `ceil(time / stride)`
///   with `same` (TensorFlow's split, the extra step after) and with `causal`
///   (`span - 1` zero steps before the sequence and none after, so that step `t`
///   sees no later input)
/// - `weight`: `[kernel, c_in, filters]` (Keras's layout; PyTorch's is `[filters,
///   c_in, kernel]`: `w_torch = w_kiln.permute(2, 1, 0)`), initialised
///   glorot-uniform with `fan_in = kernel*c_in`, `fan_out = kernel*filters`
/// - `bias`: `[filters]`, initialised to zero
pub type Conv1d<B> = Convolution<B, Conv1dSpec>;

impl ConvKind for Conv1dSpec {
    fn geometry(&self, input: Shape, max_batch: usize) -> Result<Conv2dParams> {
        Ok(Conv2dParams::conv1d(self, input, max_batch)?)
    }

    fn kernel(&self, p: &Conv2dParams) -> (Shape, usize, usize) {
        let c_in = p.in_c as usize;
        (
            Shape::new(&[self.kernel, c_in, self.filters]),
            self.kernel * c_in,
            self.kernel * self.filters,
        )
    }
}
