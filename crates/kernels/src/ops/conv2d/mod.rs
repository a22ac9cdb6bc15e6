//! 2-D convolution on NHWC batches, forward and both backward passes.
//!
//! Layouts follow Keras: input `[n, h, w, c_in]`, kernel `[kh, kw, c_in, c_out]`,
//! output `[n, oh, ow, c_out]`. The CPU backend lowers the convolution to one matrix
//! product over the whole batch (im2col): in NHWC each patch row is `kh` contiguous
//! runs of `kw * c_in` values, and the kernel is already the `[kh * kw * c_in, c_out]`
//! matrix. The product gathers the patches block by block rather than building them
//! (`cpu/gemm/patches.rs`); 3x3 stride-1 layers with enough channels use Winograd's
//! transform instead (`winograd/`).
//!
//! A 1-D convolution of `[n, time, c_in]` sequences is this op with the time axis as
//! the height and a width of 1 ([`Conv2dParams::conv1d`]): its kernel `[k, c_in,
//! c_out]` is the `[k, 1, c_in, c_out]` one, and the vertical dilation spaces its
//! taps.

mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
#[cfg(test)]
mod tests;
mod winograd;

use kiln_shape::{Conv1dSpec, Conv2dSpec, Shape, conv_output_len, same_padding_before};

use super::activation::ActivationKind;
use super::{InputGrad, u32_of, us};
use crate::storage::Storage;
use crate::{Error, Result};

/// A convolution's geometry for one call, and the activation its forward store
/// applies.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dParams {
    /// Samples.
    pub batch: u32,
    /// Input height.
    pub in_h: u32,
    /// Input width.
    pub in_w: u32,
    /// Input channels.
    pub in_c: u32,
    /// Output height.
    pub out_h: u32,
    /// Output width.
    pub out_w: u32,
    /// Output channels (filters).
    pub out_c: u32,
    /// Kernel height.
    pub kernel_h: u32,
    /// Kernel width.
    pub kernel_w: u32,
    /// Vertical stride.
    pub stride_h: u32,
    /// Horizontal stride.
    pub stride_w: u32,
    /// Zero rows above the input.
    pub pad_top: u32,
    /// Zero columns left of the input.
    pub pad_left: u32,
    /// Rows from one kernel row's input to the next's (1: adjacent). A 2-D layer's is
    /// 1; a 1-D layer's is its dilation along time.
    pub dilation_h: u32,
    /// Applied by the forward pass after the bias: the spec's activation when it
    /// [fuses into an epilogue](ActivationKind::fuses_into_epilogue), else `Linear`
    /// (the layer then applies it as an op of its own).
    pub activation: ActivationKind,
    /// Slope below zero for [`ActivationKind::LeakyRelu`].
    pub negative_slope: f32,
}

impl Conv2dParams {
    /// The geometry of `spec` applied to a batch of `batch` samples of shape `input`.
    pub fn new(spec: &Conv2dSpec, input: Shape, batch: usize) -> Result<Self> {
        const OP: &str = "conv2d";
        let invalid = |detail: String| Error::InvalidParams { op: OP, detail };
        let (h, w, c) = input
            .as_image()
            .ok_or_else(|| invalid(format!("input {input} is not [height, width, channels]")))?;
        let (kh, kw) = spec.kernel;
        let (sh, sw) = spec.stride;
        let (activation, negative_slope) = ActivationKind::of(spec.activation);
        let oh = conv_output_len(h, kh, sh, spec.padding);
        let ow = conv_output_len(w, kw, sw, spec.padding);
        let (Some(oh), Some(ow)) = (oh, ow) else {
            return Err(invalid(format!(
                "a {kh}x{kw} kernel with stride {sh}x{sw} does not fit input {input}"
            )));
        };
        Ok(Self {
            batch: u32_of(OP, "batch", batch)?,
            in_h: u32_of(OP, "height", h)?,
            in_w: u32_of(OP, "width", w)?,
            in_c: u32_of(OP, "channels", c)?,
            out_h: u32_of(OP, "output height", oh)?,
            out_w: u32_of(OP, "output width", ow)?,
            out_c: u32_of(OP, "filters", spec.filters)?,
            kernel_h: u32_of(OP, "kernel height", kh)?,
            kernel_w: u32_of(OP, "kernel width", kw)?,
            stride_h: u32_of(OP, "stride", sh)?,
            stride_w: u32_of(OP, "stride", sw)?,
            pad_top: u32_of(OP, "padding", same_padding_before(h, kh, sh, spec.padding))?,
            pad_left: u32_of(OP, "padding", same_padding_before(w, kw, sw, spec.padding))?,
            dilation_h: 1,
            activation: epilogue(activation),
            negative_slope,
        })
    }

    /// The geometry of the 1-D convolution `spec` on a batch of `batch` sequences of
    /// shape `input` (`[time, features]`): time as the height, a width of 1.
    pub fn conv1d(spec: &Conv1dSpec, input: Shape, batch: usize) -> Result<Self> {
        const OP: &str = "conv1d";
        let invalid = |detail: String| Error::InvalidParams { op: OP, detail };
        let &[time, features] = input.dims() else {
            return Err(invalid(format!("input {input} is not [time, features]")));
        };
        let span = spec.span();
        let Some(out) = conv_output_len(time, span, spec.stride, spec.padding) else {
            return Err(invalid(format!(
                "a kernel spanning {span} steps with stride {} does not fit input {input}",
                spec.stride
            )));
        };
        let (activation, negative_slope) = ActivationKind::of(spec.activation);
        let before = same_padding_before(time, span, spec.stride, spec.padding);
        Ok(Self {
            batch: u32_of(OP, "batch", batch)?,
            in_h: u32_of(OP, "time steps", time)?,
            in_w: 1,
            in_c: u32_of(OP, "features", features)?,
            out_h: u32_of(OP, "output steps", out)?,
            out_w: 1,
            out_c: u32_of(OP, "filters", spec.filters)?,
            kernel_h: u32_of(OP, "kernel", spec.kernel)?,
            kernel_w: 1,
            stride_h: u32_of(OP, "stride", spec.stride)?,
            stride_w: 1,
            pad_top: u32_of(OP, "padding", before)?,
            pad_left: 0,
            dilation_h: u32_of(OP, "dilation", spec.dilation)?,
            activation: epilogue(activation),
            negative_slope,
        })
    }

    /// The same geometry for another batch size.
    pub fn with_batch(mut self, batch: usize) -> Result<Self> {
        self.batch = u32_of("conv2d", "batch", batch)?;
        Ok(self)
    }

    /// Values of one patch: `kh * kw * c_in`.
    pub fn patch_len(&self) -> usize {
        us(self.kernel_h) * us(self.kernel_w) * us(self.in_c)
    }

    /// Output pixels over the batch: `n * oh * ow`.
    pub fn out_pixels(&self) -> usize {
        us(self.batch) * us(self.out_h) * us(self.out_w)
    }

    /// Input values over the batch.
    pub fn input_len(&self) -> usize {
        us(self.batch) * us(self.in_h) * us(self.in_w) * us(self.in_c)
    }

    /// Output values over the batch.
    pub fn output_len(&self) -> usize {
        self.out_pixels() * us(self.out_c)
    }

    /// Kernel values: `kh * kw * c_in * c_out`.
    pub fn weight_len(&self) -> usize {
        self.patch_len() * us(self.out_c)
    }
}

/// `activation` when it [fuses into an epilogue](ActivationKind::fuses_into_epilogue),
/// else `Linear` (the layer then applies it as an op of its own).
fn epilogue(activation: ActivationKind) -> ActivationKind {
    if activation.fuses_into_epilogue() {
        activation
    } else {
        ActivationKind::Linear
    }
}

/// The convolution op.
pub trait Conv2dKernel: Storage {
    /// Elements of the scratch buffer the forward and backward passes use, for
    /// geometry `p` (its batch being the largest one used).
    fn conv2d_workspace_len(&self, p: &Conv2dParams) -> usize;

    /// `y = act(conv(x, w) + bias)`, with `act` the params' epilogue activation.
    fn conv2d_fwd(
        &self,
        p: &Conv2dParams,
        x: &Self::Buffer,
        w: &Self::Buffer,
        bias: &Self::Buffer,
        y: &mut Self::Buffer,
        ws: &mut Self::Buffer,
    ) -> Result<()>;

    /// The backward pass: `dw += dL/dw`, `dbias += dL/dbias` and, unless `dx` is
    /// `None` (a first layer needs no input gradient), `dx = dL/dx`, or `dx += dL/dx`
    /// where it [accumulates](InputGrad::accumulate), from the forward's input `x` and
    /// the output gradient `dy` (at the pre-activation: the layer has applied the
    /// activation's backward). `ws` is scratch.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_bwd(
        &self,
        p: &Conv2dParams,
        x: &Self::Buffer,
        w: &Self::Buffer,
        dy: &Self::Buffer,
        dw: &mut Self::Buffer,
        dbias: &mut Self::Buffer,
        dx: Option<InputGrad<'_, Self::Buffer>>,
        ws: &mut Self::Buffer,
    ) -> Result<()>;
}
