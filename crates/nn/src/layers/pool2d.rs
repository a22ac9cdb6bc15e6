//! Max, average and global average pooling.

use kiln_kernels::Backend;
use kiln_kernels::ops::pool2d::{Pool2dParams, PoolForward};
use kiln_kernels::rng::Rng;
use kiln_shape::{GlobalAvgPool2dSpec, Pool2dSpec, Shape, Spec};

use crate::layer::{checked_output, overwrite_only};
use crate::{Backward, Layer, Mode, Result};

/// `MaxPool2d(size, stride)` and `AvgPool2d(size, stride)`.
///
/// # Shapes
/// - input: `[batch, h, w, c]`
/// - output: `[batch, oh, ow, c]`, with the window rule of [`Conv2d`](crate::Conv2d)
///   (`stride` defaults to the window size)
#[derive(Debug)]
pub struct Pool2d<B: Backend> {
    name: &'static str,
    params: Pool2dParams,
    /// What the last training-mode forward pass left for the backward pass (see
    /// [`Pool2dKernel::pool2d_reserve_len`](kiln_kernels::ops::pool2d::Pool2dKernel::pool2d_reserve_len)).
    reserve: B::Buffer,
    /// Whether `reserve` belongs to the last forward pass (an inference pass fills none).
    reserve_filled: bool,
}

impl<B: Backend> Pool2d<B> {
    /// The pooling of geometry `params`, for layer kind `name`.
    pub(crate) fn with_params(
        backend: &B,
        name: &'static str,
        params: Pool2dParams,
    ) -> Result<Self> {
        Ok(Self {
            name,
            reserve: backend.alloc(backend.pool2d_reserve_len(&params))?,
            reserve_filled: false,
            params,
        })
    }
}

impl<B: Backend> Layer<B> for Pool2d<B> {
    type Spec = Pool2dSpec;

    fn build(
        backend: &B,
        spec: &Pool2dSpec,
        input: Shape,
        max_batch: usize,
        _rng: &mut Rng,
    ) -> Result<Self> {
        checked_output(spec, input)?;
        let params = Pool2dParams::new(spec, input, max_batch)?;
        Self::with_params(backend, spec.kind_name(), params)
    }

    fn forward(
        &mut self,
        backend: &B,
        x: &B::Buffer,
        y: &mut B::Buffer,
        batch: usize,
        mode: Mode,
    ) -> Result<()> {
        let p = self.params.with_batch(batch)?;
        let train = mode == Mode::Train && backend.pool2d_reserve_len(&p) > 0;
        let reserve = train.then_some(&mut self.reserve);
        // Unfilled until the pass succeeds.
        self.reserve_filled = false;
        backend.pool2d_fwd(&p, x, y, reserve)?;
        self.reserve_filled = train;
        Ok(())
    }

    /// With `through_relu_below` (max pooling only), `dx` is the gradient at the
    /// input of the ReLU that produced `x`: one pass over the (large) input gradient
    /// instead of two, and the layer before skips its ReLU's backward pass.
    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        if pass.dx.is_none() {
            return Ok(());
        }
        let fwd = PoolForward {
            x: pass.input(self.name)?,
            y: pass.output(self.name)?,
            reserve: self.reserve_filled.then_some(&self.reserve),
        };
        let Some(dx) = overwrite_only(self.name, pass.dx)? else {
            return Ok(());
        };
        let p = self.params.with_batch(pass.batch)?;
        if pass.through_relu_below {
            backend.pool2d_bwd_through_relu(&p, fwd, pass.dy, dx)?;
        } else {
            backend.pool2d_bwd(&p, fwd, pass.dy, dx)?;
        }
        Ok(())
    }
}

/// The mean over height and width of each channel: average pooling whose window is
/// the whole image.
///
/// # Shapes
/// - input: `[batch, h, w, c]`
/// - output: `[batch, c]`
#[derive(Debug)]
pub struct GlobalAvgPool2d<B: Backend>(Pool2d<B>);

impl<B: Backend> Layer<B> for GlobalAvgPool2d<B> {
    type Spec = GlobalAvgPool2dSpec;

    fn build(
        backend: &B,
        spec: &GlobalAvgPool2dSpec,
        input: Shape,
        max_batch: usize,
        _rng: &mut Rng,
    ) -> Result<Self> {
        checked_output(spec, input)?;
        let params = Pool2dParams::global_avg(input, max_batch)?;
        Ok(Self(Pool2d::with_params(
            backend,
            spec.kind_name(),
            params,
        )?))
    }

    fn forward(
        &mut self,
        backend: &B,
        x: &B::Buffer,
        y: &mut B::Buffer,
        batch: usize,
        mode: Mode,
    ) -> Result<()> {
        self.0.forward(backend, x, y, batch, mode)
    }

    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        self.0.backward(backend, pass)
    }
}
