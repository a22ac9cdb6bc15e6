//! The 2-D convolution layer, and the convolution that it and `Conv1d` share.

use std::marker::PhantomData;

use kiln_kernels::ops::conv2d::Conv2dParams;
use kiln_kernels::rng::Rng;
use kiln_kernels::{Backend, ViewParams, VisitParams};
use kiln_shape::{Conv2dSpec, Shape, Spec};

use super::activation::FusedActivation;
use super::params::KernelAndBias;
use crate::layer::checked_output;
use crate::{Backward, Layer, Mode, Result};

/// `y = activation(conv(x, W) + b)` with stride and `valid` or `same` padding.
///
/// # Shapes
/// - input: `[batch, h, w, c_in]` (NHWC, Keras's order)
/// - output: `[batch, oh, ow, filters]`, `oh = (h - kh) / stride + 1` with `valid`
///   padding, `ceil(h / stride)` with `same` (likewise for the width)
/// - `weight`: `[kh, kw, c_in, filters]` (Keras's layout; PyTorch's is
///   `[filters, c_in, kh, kw]`), initialised glorot-uniform with
///   `fan_in = kh*kw*c_in`, `fan_out = kh*kw*filters`
/// - `bias`: `[filters]`, initialised to zero
pub type Conv2d<B> = Convolution<B, Conv2dSpec>;

/// A convolution kind: how its spec becomes the op's geometry and its kernel.
pub trait ConvKind: Spec + Sized {
    /// The op's geometry for batches of up to `max_batch` samples of shape `input`.
    fn geometry(&self, input: Shape, max_batch: usize) -> Result<Conv2dParams>;

    /// The kernel's shape (output channels last) for geometry `p`, and its fans in
    /// and out for glorot-uniform initialisation.
    fn kernel(&self, p: &Conv2dParams) -> (Shape, usize, usize);
}

impl ConvKind for Conv2dSpec {
    fn geometry(&self, input: Shape, max_batch: usize) -> Result<Conv2dParams> {
        Ok(Conv2dParams::new(self, input, max_batch)?)
    }

    fn kernel(&self, p: &Conv2dParams) -> (Shape, usize, usize) {
        let (kh, kw) = self.kernel;
        let c_in = p.in_c as usize;
        (
            Shape::new(&[kh, kw, c_in, self.filters]),
            kh * kw * c_in,
            kh * kw * self.filters,
        )
    }
}

/// The convolution op with its kernel, bias, scratch and activation, for the kind
/// `S` ([`Conv2d`], or [`Conv1d`](crate::Conv1d): the same op with time as the
/// height and a width of 1).
#[derive(Debug)]
pub struct Convolution<B: Backend, S> {
    params: Conv2dParams,
    kernel: KernelAndBias<B>,
    workspace: B::Buffer,
    activation: FusedActivation<B>,
    kind: PhantomData<fn() -> S>,
}

impl<B: Backend, S: ConvKind> Layer<B> for Convolution<B, S> {
    type Spec = S;

    fn build(backend: &B, spec: &S, input: Shape, max_batch: usize, rng: &mut Rng) -> Result<Self> {
        let output = checked_output(spec, input)?;
        let params = spec.geometry(input, max_batch)?;
        let (shape, fan_in, fan_out) = spec.kernel(&params);
        let activation = spec.activation();
        Ok(Self {
            kernel: KernelAndBias::new(backend, spec.kind_name(), shape, fan_in, fan_out, rng)?,
            workspace: backend.alloc(backend.conv2d_workspace_len(&params))?,
            activation: FusedActivation::new(backend, activation, max_batch * output.size())?,
            params,
            kind: PhantomData,
        })
    }

    fn forward(
        &mut self,
        backend: &B,
        x: &B::Buffer,
        y: &mut B::Buffer,
        batch: usize,
        _mode: Mode,
    ) -> Result<()> {
        let p = self.params.with_batch(batch)?;
        let k = &self.kernel;
        backend.conv2d_fwd(&p, x, &k.weight, &k.bias, y, &mut self.workspace)?;
        self.activation
            .forward(backend, y, p.out_pixels(), p.out_c as usize)
    }

    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let name = self.kernel.kind();
        let x = pass.input(name)?;
        let p = self.params.with_batch(pass.batch)?;
        self.activation.backward(
            backend,
            name,
            pass.y,
            pass.dy,
            p.out_pixels(),
            p.out_c as usize,
            pass.at,
        )?;
        let k = &mut self.kernel;
        backend.conv2d_bwd(
            &p,
            x,
            &k.weight,
            pass.dy,
            &mut k.dweight,
            &mut k.dbias,
            pass.dx,
            &mut self.workspace,
        )?;
        Ok(())
    }

    fn visit_parameters<'a>(
        &'a mut self,
        layer: &'static str,
        f: VisitParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        self.kernel.visit(layer, f)
    }

    fn parameters<'a>(
        &'a self,
        layer: &'static str,
        f: ViewParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        self.kernel.view(layer, f)
    }
}
