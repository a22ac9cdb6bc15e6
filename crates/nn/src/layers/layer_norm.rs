//! Layer normalisation.

use kiln_kernels::ops::layer_norm::LayerNormParams;
use kiln_kernels::rng::Rng;
use kiln_kernels::{Backend, ParamMut, ParamRef, ViewParams, VisitParams};
use kiln_shape::{LayerNormSpec, Shape};

use crate::layer::checked_output;
use crate::{Backward, Layer, Mode, Result};

/// `y = gamma * (x - mean) / sqrt(var + epsilon) + beta`, the mean and (biased)
/// variance over the last axis of each sample or step (PyTorch's `nn.LayerNorm(width)`,
/// Keras's `LayerNormalization()`).
///
/// # Shapes
/// - input: `[batch, ..., features]`
/// - output: the input's shape
/// - `weight` (gamma): `[features]`, initialised to one
/// - `bias` (beta): `[features]`, initialised to zero
#[derive(Debug)]
pub struct LayerNorm<B: Backend> {
    rows_a_sample: usize,
    features: usize,
    epsilon: f32,
    gamma: B::Buffer,
    beta: B::Buffer,
    dgamma: B::Buffer,
    dbeta: B::Buffer,
    /// Each row's mean and reciprocal standard deviation, from the last forward.
    stats: B::Buffer,
}

const NAME: &str = "LayerNorm";

impl<B: Backend> LayerNorm<B> {
    fn params(&self, batch: usize, accumulate: bool) -> Result<LayerNormParams> {
        Ok(LayerNormParams {
            epsilon: self.epsilon,
            accumulate: u32::from(accumulate),
            ..LayerNormParams::new(batch * self.rows_a_sample, self.features)?
        })
    }
}

impl<B: Backend> Layer<B> for LayerNorm<B> {
    type Spec = LayerNormSpec;

    fn build(
        backend: &B,
        spec: &LayerNormSpec,
        input: Shape,
        max_batch: usize,
        _rng: &mut Rng,
    ) -> Result<Self> {
        checked_output(spec, input)?;
        let features = input.dims().last().copied().unwrap_or(1).max(1);
        let rows_a_sample = input.size() / features;
        Ok(Self {
            rows_a_sample,
            features,
            epsilon: spec.epsilon,
            gamma: backend.alloc_from(&vec![1.0; features])?,
            beta: backend.alloc(features)?,
            dgamma: backend.alloc(features)?,
            dbeta: backend.alloc(features)?,
            stats: backend.alloc(2 * max_batch * rows_a_sample)?,
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
        let p = self.params(batch, false)?;
        backend.layer_norm_fwd(&p, x, &self.gamma, &self.beta, y, &mut self.stats)?;
        Ok(())
    }

    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let x = pass.input(NAME)?;
        let accumulate = pass.dx.as_ref().is_some_and(|d| d.accumulate);
        let p = self.params(pass.batch, accumulate)?;
        backend.layer_norm_bwd(
            &p,
            x,
            &self.gamma,
            &self.stats,
            pass.dy,
            pass.dx.map(|d| d.buffer),
            &mut self.dgamma,
            &mut self.dbeta,
        )?;
        Ok(())
    }

    fn visit_parameters<'a>(
        &'a mut self,
        layer: &'static str,
        f: VisitParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let shape = Shape::new(&[self.features]);
        f(ParamMut {
            layer,
            kind: NAME,
            name: "weight",
            shape,
            value: &mut self.gamma,
            grad: &mut self.dgamma,
        })?;
        f(ParamMut {
            layer,
            kind: NAME,
            name: "bias",
            shape,
            value: &mut self.beta,
            grad: &mut self.dbeta,
        })
    }

    fn parameters<'a>(
        &'a self,
        layer: &'static str,
        f: ViewParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let shape = Shape::new(&[self.features]);
        f(ParamRef {
            layer,
            kind: NAME,
            name: "weight",
            shape,
            value: &self.gamma,
            grad: &self.dgamma,
        })?;
        f(ParamRef {
            layer,
            kind: NAME,
            name: "bias",
            shape,
            value: &self.beta,
            grad: &self.dbeta,
        })
    }
}
