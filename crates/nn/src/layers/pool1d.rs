//! Pooling over time: the 2-D pooling op on `[time, 1, features]`, time as the
//! height and a width of 1.

use std::marker::PhantomData;

use kiln_kernels::Backend;
use kiln_kernels::ops::pool2d::Pool2dParams;
use kiln_kernels::rng::Rng;
use kiln_shape::{GlobalPool1dSpec, MaxPool1dSpec, Padding, Pool2dSpec, PoolMode, Shape, Spec};

use super::pool2d::Pool2d;
use crate::layer::checked_output;
use crate::{Backward, Layer, Mode, Result};

/// `MaxPool1d(size, stride)`: the largest value of each window of time steps.
///
/// # Shapes
/// - input: `[batch, time, features]` (NLC; PyTorch's `nn.MaxPool1d` takes NCL)
/// - output: `[batch, out, features]`, `out = (time - size) / stride + 1` with
///   `valid` padding, `ceil(time / stride)` with `same` (`stride` defaults to the
///   window size)
pub type MaxPool1d<B> = Pooling1d<B, MaxPool1dSpec>;

/// `GlobalAvgPool1d` and `GlobalMaxPool1d`: the mean or the largest value of each
/// feature over all time steps (PyTorch: `x.mean(1)`, `x.amax(1)` in kiln's layout).
///
/// # Shapes
/// - input: `[batch, time, features]`
/// - output: `[batch, features]`
pub type GlobalPool1d<B> = Pooling1d<B, GlobalPool1dSpec>;

/// A pooling kind over time: the 2-D window it is on `[time, 1, features]`.
pub trait Pool1dKind: Spec + Sized {
    /// The 2-D pooling of a sequence of `time` steps.
    fn as_image(&self, time: usize) -> Pool2dSpec;
}

impl Pool1dKind for MaxPool1dSpec {
    fn as_image(&self, _time: usize) -> Pool2dSpec {
        Pool2dSpec {
            mode: PoolMode::Max,
            size: (self.size, 1),
            stride: (self.stride, 1),
            padding: self.padding,
        }
    }
}

impl Pool1dKind for GlobalPool1dSpec {
    fn as_image(&self, time: usize) -> Pool2dSpec {
        Pool2dSpec {
            mode: self.mode,
            size: (time, 1),
            stride: (time.max(1), 1),
            padding: Padding::Valid,
        }
    }
}

/// The pooling op of kind `S` over sequences.
#[derive(Debug)]
pub struct Pooling1d<B: Backend, S>(Pool2d<B>, PhantomData<fn() -> S>);

impl<B: Backend, S: Pool1dKind> Layer<B> for Pooling1d<B, S> {
    type Spec = S;

    fn build(
        backend: &B,
        spec: &S,
        input: Shape,
        max_batch: usize,
        _rng: &mut Rng,
    ) -> Result<Self> {
        checked_output(spec, input)?;
        // `checked_output` accepted it: a rank-2 shape.
        let (time, features) = (input.dims()[0], input.dims()[1]);
        let image = Shape::new(&[time, 1, features]);
        let params = Pool2dParams::new(&spec.as_image(time), image, max_batch)?;
        let pool = Pool2d::with_params(backend, spec.kind_name(), params)?;
        Ok(Self(pool, PhantomData))
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

    /// Max pooling with `through_relu_below` routes the gradient only to positive
    /// maxima, as [`Pool2d`] does.
    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        self.0.backward(backend, pass)
    }
}
