//! 2-D max and average pooling on NHWC batches, forward and backward.
//! Global average pooling is average pooling with a window of the whole image.

mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use kiln_shape::{Pool2dSpec, PoolMode, Shape, conv_output_len, same_padding_before};

use super::{u32_of, us};
use crate::storage::Storage;
use crate::{Error, Result};

/// Max or average.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The largest value of the window (the first one on ties, which also receives the
    /// gradient).
    Max = 0,
    /// The mean over the window's cells inside the input (padding excluded, as Keras).
    Avg = 1,
}

/// A pooling's geometry for one call.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dParams {
    /// Samples.
    pub batch: u32,
    /// Input height.
    pub in_h: u32,
    /// Input width.
    pub in_w: u32,
    /// Channels (unchanged).
    pub channels: u32,
    /// Output height.
    pub out_h: u32,
    /// Output width.
    pub out_w: u32,
    /// Window height.
    pub size_h: u32,
    /// Window width.
    pub size_w: u32,
    /// Vertical stride.
    pub stride_h: u32,
    /// Horizontal stride.
    pub stride_w: u32,
    /// Rows of padding above.
    pub pad_top: u32,
    /// Columns of padding to the left.
    pub pad_left: u32,
    /// Max or average.
    pub kind: PoolKind,
}

impl Pool2dParams {
    /// The geometry of `spec` on a batch of `batch` samples of shape `input`.
    pub fn new(spec: &Pool2dSpec, input: Shape, batch: usize) -> Result<Self> {
        const OP: &str = "pool2d";
        let invalid = |detail: String| Error::InvalidParams { op: OP, detail };
        let (h, w, c) = input
            .as_image()
            .ok_or_else(|| invalid(format!("input {input} is not [height, width, channels]")))?;
        let (kh, kw) = spec.size;
        let (sh, sw) = spec.stride;
        let (Some(oh), Some(ow)) = (
            conv_output_len(h, kh, sh, spec.padding),
            conv_output_len(w, kw, sw, spec.padding),
        ) else {
            return Err(invalid(format!(
                "a {kh}x{kw} window does not fit input {input}"
            )));
        };
        Ok(Self {
            batch: u32_of(OP, "batch", batch)?,
            in_h: u32_of(OP, "height", h)?,
            in_w: u32_of(OP, "width", w)?,
            channels: u32_of(OP, "channels", c)?,
            out_h: u32_of(OP, "output height", oh)?,
            out_w: u32_of(OP, "output width", ow)?,
            size_h: u32_of(OP, "window", kh)?,
            size_w: u32_of(OP, "window", kw)?,
            stride_h: u32_of(OP, "stride", sh)?,
            stride_w: u32_of(OP, "stride", sw)?,
            pad_top: u32_of(OP, "padding", same_padding_before(h, kh, sh, spec.padding))?,
            pad_left: u32_of(OP, "padding", same_padding_before(w, kw, sw, spec.padding))?,
            kind: match spec.mode {
                PoolMode::Max => PoolKind::Max,
                PoolMode::Avg => PoolKind::Avg,
            },
        })
    }

    /// Average over each whole image: `[h, w, c]` to `[c]`.
    pub fn global_avg(input: Shape, batch: usize) -> Result<Self> {
        let (h, w) = match input.as_image() {
            Some((h, w, _)) => (h, w),
            None => (0, 0),
        };
        let spec = Pool2dSpec {
            mode: PoolMode::Avg,
            size: (h, w),
            stride: (h.max(1), w.max(1)),
            padding: kiln_shape::Padding::Valid,
        };
        Self::new(&spec, input, batch)
    }

    /// Refuses anything but max pooling for
    /// [`Pool2dKernel::pool2d_bwd_through_relu`]: only a maximum passes its gradient
    /// through the ReLU below it unchanged.
    pub fn check_through_relu(&self) -> Result<()> {
        if self.kind == PoolKind::Max {
            Ok(())
        } else {
            Err(Error::InvalidParams {
                op: "pool2d_bwd_through_relu",
                detail: "only max pooling passes its gradient through a ReLU".into(),
            })
        }
    }

    /// Whether the windows tile the input without overlap or padding (the usual
    /// `MaxPool(2)`): then every input cell belongs to at most one window, and max
    /// pooling's backward pass can write each cell once instead of gathering or adding.
    pub fn windows_tile(&self) -> bool {
        self.stride_h == self.size_h
            && self.stride_w == self.size_w
            && self.pad_top == 0
            && self.pad_left == 0
    }

    /// The same geometry for another batch size.
    pub fn with_batch(mut self, batch: usize) -> Result<Self> {
        self.batch = u32_of("pool2d", "batch", batch)?;
        Ok(self)
    }

    /// Input values over the batch.
    pub fn input_len(&self) -> usize {
        us(self.batch) * us(self.in_h) * us(self.in_w) * us(self.channels)
    }

    /// Output values over the batch.
    pub fn output_len(&self) -> usize {
        us(self.batch) * us(self.out_h) * us(self.out_w) * us(self.channels)
    }
}

/// What a backward pass reads of its forward pass.
#[derive(Debug)]
pub struct PoolForward<'a, T> {
    /// The forward's input.
    pub x: &'a T,
    /// Its output.
    pub y: &'a T,
    /// The reserve it filled (training mode), or `None`.
    pub reserve: Option<&'a T>,
}

impl<T> Clone for PoolForward<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for PoolForward<'_, T> {}

/// The pooling op.
pub trait Pool2dKernel: Storage {
    /// Values of the reserve of geometry `p`: what a training-mode forward pass
    /// leaves for its backward pass (the CPU keeps each max-pooling output's place in
    /// its window, so that the backward pass need not read the input again); zero
    /// where the backend keeps nothing.
    fn pool2d_reserve_len(&self, p: &Pool2dParams) -> usize;

    /// `y = pool(x)`; with a `reserve` of [`pool2d_reserve_len`](Self::pool2d_reserve_len)
    /// values, also what the backward pass reads back.
    fn pool2d_fwd(
        &self,
        p: &Pool2dParams,
        x: &Self::Buffer,
        y: &mut Self::Buffer,
        reserve: Option<&mut Self::Buffer>,
    ) -> Result<()>;

    /// `dx = dL/dx` (overwritten) from the forward pass `fwd` and the output gradient
    /// `dy`. Max pooling sends each gradient to the window's first cell that equals
    /// the forward's output (its first maximum), so `fwd.y` must be that output, and
    /// `fwd.reserve`, if any, the one that forward pass filled.
    fn pool2d_bwd(
        &self,
        p: &Pool2dParams,
        fwd: PoolForward<'_, Self::Buffer>,
        dy: &Self::Buffer,
        dx: &mut Self::Buffer,
    ) -> Result<()>;

    /// Max pooling's backward pass through the ReLU that produced its input `fwd.x`:
    /// `dx` is the gradient at the ReLU's input, `pool2d_bwd` followed by the ReLU's
    /// backward pass, in one pass over the image. The layer before then
    /// skips its activation's backward pass.
    fn pool2d_bwd_through_relu(
        &self,
        p: &Pool2dParams,
        fwd: PoolForward<'_, Self::Buffer>,
        dy: &Self::Buffer,
        dx: &mut Self::Buffer,
    ) -> Result<()>;
}

#[cfg(test)]
mod tests;
