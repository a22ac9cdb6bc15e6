//! The embedding layer: a learned row of a table for each token id.

use kiln_kernels::ops::embedding::EmbeddingParams;
use kiln_kernels::rng::Rng;
use kiln_kernels::{Backend, ParamMut, ParamRef, ViewParams, VisitParams};
use kiln_shape::{EmbeddingSpec, Shape};

use crate::layer::{checked_output, overwrite_only};
use crate::{Backward, Layer, Mode, Result};

/// `y[t] = table[x[t]]` for each token id `x[t]` of a sequence.
///
/// # Shapes
/// - input: `[batch, time]` token ids below the input's vocabulary (at most the
///   layer's), as exact `f32` values; an id out of range is an error naming its batch
///   row and position
/// - output: `[batch, time, width]`
/// - `weight`: `[vocabulary, width]`, initialised uniform in ±0.05 (Keras's
///   `Embedding`); the layout of Keras's `embeddings` and PyTorch's
///   `nn.Embedding.weight`, so weights load from either unchanged
///
/// The backward pass adds each output gradient row to its id's row of the table's
/// gradient and touches no other row. Token ids have no gradient: a gradient asked
/// for at the input is zero.
#[derive(Debug)]
pub struct Embedding<B: Backend> {
    time: usize,
    spec: EmbeddingSpec,
    table: B::Buffer,
    dtable: B::Buffer,
}

const NAME: &str = "Embedding";

impl<B: Backend> Embedding<B> {
    fn params(&self, batch: usize) -> Result<EmbeddingParams> {
        Ok(EmbeddingParams::new(
            batch,
            self.time,
            self.spec.vocabulary,
            self.spec.width,
        )?)
    }

    fn table_shape(&self) -> Shape {
        Shape::new(&[self.spec.vocabulary, self.spec.width])
    }
}

impl<B: Backend> Layer<B> for Embedding<B> {
    type Spec = EmbeddingSpec;

    fn build(
        backend: &B,
        spec: &EmbeddingSpec,
        input: Shape,
        _max_batch: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        checked_output(spec, input)?;
        let len = spec.vocabulary * spec.width;
        let values: Vec<f32> = (0..len).map(|_| rng.uniform_in(-0.05, 0.05)).collect();
        Ok(Self {
            time: input.size(),
            spec: *spec,
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
        let p = self.params(batch)?;
        backend.embedding_fwd(&p, x, &self.table, y)?;
        Ok(())
    }

    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let x = pass.input(NAME)?;
        let p = self.params(pass.batch)?;
        backend.embedding_bwd(&p, x, pass.dy, &mut self.dtable)?;
        if let Some(dx) = overwrite_only(NAME, pass.dx)? {
            backend.fill(dx, p.tokens(), 0.0)?;
        }
        Ok(())
    }

    fn visit_parameters<'a>(
        &'a mut self,
        layer: &'static str,
        f: VisitParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let shape = self.table_shape();
        f(ParamMut {
            layer,
            kind: NAME,
            name: "weight",
            shape,
            value: &mut self.table,
            grad: &mut self.dtable,
        })
    }

    fn parameters<'a>(
        &'a self,
        layer: &'static str,
        f: ViewParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        f(ParamRef {
            layer,
            kind: NAME,
            name: "weight",
            shape: self.table_shape(),
            value: &self.table,
            grad: &self.dtable,
        })
    }
}
