//! Position embeddings: a vector for each position, added to the step there.

use kiln_kernels::ops::add::AddParams;
use kiln_kernels::ops::bias::BiasParams;
use kiln_kernels::rng::Rng;
use kiln_kernels::{Backend, ParamMut, ParamRef, ViewParams, VisitParams};
use kiln_shape::{Activation, PositionEmbeddingSpec, Shape};

use crate::layer::checked_output;
use crate::{Backward, Error, Layer, Mode, Result};

/// `y[t] = x[t] + table[t]` for each step `t` of a sequence: GPT's learned position
/// embeddings (`nn.Embedding(context, width)` indexed by `arange(time)`), or with
/// `sinusoidal = true` the fixed table of Vaswani et al. (2017),
/// `table[t, 2i] = sin(t / 10000^(2i / width))`, `table[t, 2i + 1] = cos(..)`.
///
/// # Shapes
/// - input: `[batch, time, width]`, `time` at most `context`
/// - output: the input's shape
/// - `weight`: `[context, width]` (learned only), initialised normal-like in ±0.05
#[derive(Debug)]
pub struct PositionEmbedding<B: Backend> {
    spec: PositionEmbeddingSpec,
    time: usize,
    width: usize,
    table: B::Buffer,
    dtable: B::Buffer,
}

const NAME: &str = "PositionEmbedding";

fn u32_of(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Spec {
        kind: NAME,
        detail: format!("size {v} does not fit in 32 bits"),
    })
}

impl<B: Backend> PositionEmbedding<B> {
    fn per_sample(&self, batch: usize) -> Result<BiasParams> {
        Ok(BiasParams::new(
            u32_of(batch)?,
            u32_of(self.time * self.width)?,
        ))
    }
}

impl<B: Backend> Layer<B> for PositionEmbedding<B> {
    type Spec = PositionEmbeddingSpec;

    fn build(
        backend: &B,
        spec: &PositionEmbeddingSpec,
        input: Shape,
        _max_batch: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        checked_output(spec, input)?;
        let (time, width) = (input.dims()[0], input.dims()[1]);
        let len = spec.context * width;
        let values: Vec<f32> = if spec.sinusoidal {
            PositionEmbeddingSpec::sinusoids(spec.context, width)
        } else {
            (0..len).map(|_| rng.uniform_in(-0.05, 0.05)).collect()
        };
        Ok(Self {
            spec: *spec,
            time,
            width,
            table: backend.alloc_from(&values)?,
            dtable: backend.alloc(len)?,
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
        let p = self.per_sample(batch)?;
        backend.copy(x, y, batch * self.time * self.width)?;
        // The table's first `time` rows, added to each sample as one bias.
        backend.bias_activation(&p, &self.table, y)?;
        Ok(())
    }

    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let len = pass.batch * self.time * self.width;
        if !self.spec.sinusoidal {
            backend.bias_grad(&self.per_sample(pass.batch)?, pass.dy, &mut self.dtable)?;
        }
        if let Some(dx) = pass.dx {
            if dx.accumulate {
                backend.add_fwd_inplace(
                    &AddParams::new(Activation::Linear, len)?,
                    pass.dy,
                    dx.buffer,
                )?;
            } else {
                backend.copy(pass.dy, dx.buffer, len)?;
            }
        }
        Ok(())
    }

    fn visit_parameters<'a>(
        &'a mut self,
        layer: &'static str,
        f: VisitParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        if self.spec.sinusoidal {
            return Ok(());
        }
        f(ParamMut {
            layer,
            kind: NAME,
            name: "weight",
            shape: Shape::new(&[self.spec.context, self.width]),
            value: &mut self.table,
            grad: &mut self.dtable,
        })
    }

    fn parameters<'a>(
        &'a self,
        layer: &'static str,
        f: ViewParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        if self.spec.sinusoidal {
            return Ok(());
        }
        f(ParamRef {
            layer,
            kind: NAME,
            name: "weight",
            shape: Shape::new(&[self.spec.context, self.width]),
            value: &self.table,
            grad: &self.dtable,
        })
    }
}
