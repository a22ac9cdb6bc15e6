//! The fully connected layer.

use kiln_kernels::ops::bias::BiasParams;
use kiln_kernels::ops::matmul::MatmulParams;
use kiln_kernels::rng::Rng;
use kiln_kernels::{Backend, ViewParams, VisitParams};
use kiln_shape::{DenseSpec, Shape};

use super::activation::FusedActivation;
use super::params::KernelAndBias;
use crate::layer::checked_output;
use crate::{Backward, Error, Layer, Mode, Result};

/// `y = activation(x W + b)`.
///
/// # Shapes
/// - input: `[batch, in]` (a rank-1 sample; put `Flatten` after images)
/// - output: `[batch, units]`
/// - `weight`: `[in, units]` (Keras's layout; PyTorch's `Linear.weight` is its
///   transpose), initialised glorot-uniform
/// - `bias`: `[units]`, initialised to zero
#[derive(Debug)]
pub struct Dense<B: Backend> {
    in_features: usize,
    units: usize,
    params: KernelAndBias<B>,
    activation: FusedActivation<B>,
}

const NAME: &str = "Dense";

impl<B: Backend> Dense<B> {
    fn product(&self, batch: usize) -> Result<MatmulParams> {
        let u32_of = |v: usize| {
            u32::try_from(v).map_err(|_| Error::Spec {
                kind: NAME,
                detail: format!("size {v} does not fit in 32 bits"),
            })
        };
        Ok(MatmulParams {
            m: u32_of(batch)?,
            n: u32_of(self.units)?,
            k: u32_of(self.in_features)?,
            trans_a: false,
            trans_b: false,
            accumulate: false,
        })
    }
}

impl<B: Backend> Dense<B> {
    /// The same layer, its parameters reported under another kind (a `TimeDense`
    /// is this layer over every time step).
    pub(crate) fn relabel(mut self, kind: &'static str) -> Self {
        self.params.kind = kind;
        self
    }
}

impl<B: Backend> Layer<B> for Dense<B> {
    type Spec = DenseSpec;

    fn build(
        backend: &B,
        spec: &DenseSpec,
        input: Shape,
        max_batch: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        checked_output(spec, input)?;
        let (in_features, units) = (input.size(), spec.units);
        Ok(Self {
            in_features,
            units,
            params: KernelAndBias::new(
                backend,
                NAME,
                Shape::new(&[in_features, units]),
                in_features,
                units,
                rng,
            )?,
            activation: FusedActivation::new(backend, spec.activation, max_batch * units)?,
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
        let p = self.product(batch)?;
        backend.matmul(&p, x, &self.params.weight, y)?;
        let (activation, negative_slope) = self.activation.epilogue();
        let bias = BiasParams {
            activation,
            negative_slope,
            ..BiasParams::new(p.m, p.n)
        };
        backend.bias_activation(&bias, &self.params.bias, y)?;
        self.activation.forward(backend, y, batch, self.units)
    }

    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let x = pass.input(NAME)?;
        let (batch, dy) = (pass.batch, pass.dy);
        self.activation
            .backward(backend, NAME, pass.y, dy, batch, self.units, pass.at)?;
        let p = self.product(batch)?;
        // dW += x^T dy: [in, batch] x [batch, units].
        let dw = MatmulParams {
            m: p.k,
            n: p.n,
            k: p.m,
            trans_a: true,
            trans_b: false,
            accumulate: true,
        };
        backend.matmul(&dw, x, dy, &mut self.params.dweight)?;
        backend.bias_grad(&BiasParams::new(p.m, p.n), dy, &mut self.params.dbias)?;
        if let Some(dx) = pass.dx {
            // dx = dy W^T (or dx += ...): [batch, units] x [units, in].
            let dxp = MatmulParams {
                m: p.m,
                n: p.k,
                k: p.n,
                trans_a: false,
                trans_b: true,
                accumulate: dx.accumulate,
            };
            backend.matmul(&dxp, dy, &self.params.weight, dx.buffer)?;
        }
        Ok(())
    }

    fn visit_parameters<'a>(
        &'a mut self,
        layer: &'static str,
        f: VisitParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        self.params.visit(layer, f)
    }

    fn parameters<'a>(
        &'a self,
        layer: &'static str,
        f: ViewParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        self.params.view(layer, f)
    }
}
