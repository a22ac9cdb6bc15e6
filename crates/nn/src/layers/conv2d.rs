//! The 2-D convolution layer.

use kiln_kernels::ops::conv2d::Conv2dParams;
use kiln_kernels::rng::Rng;
use kiln_kernels::{Backend, ViewParams, VisitParams};
use kiln_shape::{Conv2dSpec, Shape};

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
#[derive(Debug)]
pub struct Conv2d<B: Backend> {
    params: Conv2dParams,
    kernel: KernelAndBias<B>,
    workspace: B::Buffer,
    activation: FusedActivation<B>,
}

const NAME: &str = "Conv2d";

impl<B: Backend> Layer<B> for Conv2d<B> {
    type Spec = Conv2dSpec;

    fn build(
        backend: &B,
        spec: &Conv2dSpec,
        input: Shape,
        max_batch: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        let output = checked_output(spec, input)?;
        let params = Conv2dParams::new(spec, input, max_batch)?;
        let (kh, kw) = spec.kernel;
        let c_in = params.in_c as usize;
        Ok(Self {
            kernel: KernelAndBias::new(
                backend,
                NAME,
                Shape::new(&[kh, kw, c_in, spec.filters]),
                kh * kw * c_in,
                kh * kw * spec.filters,
                rng,
            )?,
            workspace: backend.alloc(backend.conv2d_workspace_len(&params))?,
            activation: FusedActivation::new(backend, spec.activation, max_batch * output.size())?,
            params,
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
        let x = pass.input(NAME)?;
        let p = self.params.with_batch(pass.batch)?;
        self.activation.backward(
            backend,
            NAME,
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
