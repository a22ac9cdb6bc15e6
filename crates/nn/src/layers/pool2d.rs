//! Max, average and global average pooling.

use kiln_kernels::Backend;
use kiln_kernels::ops::pool2d::{Pool2dParams, PoolForward, PoolKind};
use kiln_kernels::rng::Rng;
use kiln_shape::{LayerSpec, Shape};

use crate::layer::checked_output;
use crate::{Error, GradAt, Layer, Mode, Result};

/// `MaxPool2d(size, stride)`, `AvgPool2d(size, stride)` and `GlobalAvgPool2d`.
///
/// # Shapes
/// - input: `[batch, h, w, c]`
/// - output: `[batch, oh, ow, c]`, with the window rule of [`Conv2d`](crate::Conv2d)
///   (`stride` defaults to the window size)
#[derive(Debug)]
pub struct Pool2d<B: Backend> {
    params: Pool2dParams,
    /// What the last training-mode forward pass left for the backward pass (see
    /// [`Pool2dKernel::pool2d_reserve_len`](kiln_kernels::ops::pool2d::Pool2dKernel::pool2d_reserve_len)).
    reserve: B::Buffer,
    /// Whether `reserve` belongs to the last forward pass (an inference pass fills none).
    reserve_filled: bool,
}

impl<B: Backend> Layer<B> for Pool2d<B> {
    fn build(
        backend: &B,
        spec: &LayerSpec,
        input: Shape,
        max_batch: usize,
        _rng: &mut Rng,
    ) -> Result<Self> {
        let params = match *spec {
            LayerSpec::MaxPool2d(p) => Pool2dParams::new(&p, PoolKind::Max, input, max_batch),
            LayerSpec::AvgPool2d(p) => Pool2dParams::new(&p, PoolKind::Avg, input, max_batch),
            LayerSpec::GlobalAvgPool2d => Pool2dParams::global_avg(input, max_batch),
            _ => {
                return Err(Error::WrongSpec {
                    layer: "Pool2d",
                    spec: spec.kind(),
                });
            }
        };
        checked_output(spec, input)?;
        let params = params?;
        Ok(Self {
            params,
            reserve: backend.alloc(backend.pool2d_reserve_len(&params))?,
            reserve_filled: false,
        })
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

    fn backward(
        &mut self,
        backend: &B,
        x: &B::Buffer,
        y: &B::Buffer,
        dy: &mut B::Buffer,
        dx: Option<&mut B::Buffer>,
        batch: usize,
        _at: GradAt,
    ) -> Result<()> {
        if let Some(dx) = dx {
            let fwd = self.forward_pass(x, y);
            backend.pool2d_bwd(&self.params.with_batch(batch)?, fwd, dy, dx)?;
        }
        Ok(())
    }
}

impl<B: Backend> Pool2d<B> {
    /// The last forward pass, on input `x` with output `y`.
    fn forward_pass<'a>(
        &'a self,
        x: &'a B::Buffer,
        y: &'a B::Buffer,
    ) -> PoolForward<'a, B::Buffer> {
        PoolForward {
            x,
            y,
            reserve: self.reserve_filled.then_some(&self.reserve),
        }
    }

    /// Max pooling's backward pass through the ReLU of the layer before, which
    /// produced `x`: `dx` is the gradient at that layer's pre-activation, so that its
    /// own backward pass runs with [`GradAt::PreActivation`] and skips the ReLU. One
    /// pass over the (large) input gradient instead of two; `model!` uses it wherever
    /// `MaxPool2d` follows a layer with `activation = relu`.
    #[allow(clippy::too_many_arguments)] // `Layer::backward`'s arguments, less `at`
    pub fn backward_through_relu(
        &mut self,
        backend: &B,
        x: &B::Buffer,
        y: &B::Buffer,
        dy: &mut B::Buffer,
        dx: Option<&mut B::Buffer>,
        batch: usize,
    ) -> Result<()> {
        if let Some(dx) = dx {
            let fwd = self.forward_pass(x, y);
            backend.pool2d_bwd_through_relu(&self.params.with_batch(batch)?, fwd, dy, dx)?;
        }
        Ok(())
    }
}

/// The mean over height and width of each channel: a [`Pool2d`] whose window is the
/// whole image.
///
/// # Shapes
/// - input: `[batch, h, w, c]`
/// - output: `[batch, c]`
pub type GlobalAvgPool2d<B> = Pool2d<B>;
