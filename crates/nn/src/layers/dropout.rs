//! Inverted dropout.

use kiln_kernels::Backend;
use kiln_kernels::ops::dropout::DropoutParams;
use kiln_kernels::rng::Rng;
use kiln_shape::{LayerSpec, Shape};

use crate::layer::checked_output;
use crate::{Error, GradAt, Layer, Mode, Result};

/// Zeroes each input with probability `rate` in training and scales the survivors by
/// `1 / (1 - rate)`; the identity in inference. Seeded: each training forward draws
/// a new mask seed from the layer's generator, so a run is reproducible.
///
/// # Shapes
/// Input and output have the same shape.
#[derive(Debug)]
pub struct Dropout {
    rate: f32,
    size: usize,
    rng: Rng,
    // The mask of the last forward: `None` after an inference forward.
    mask_seed: Option<u64>,
}

impl Dropout {
    fn params(&self, batch: usize, seed: u64) -> Result<DropoutParams> {
        let len = u32::try_from(batch * self.size).map_err(|_| Error::Spec {
            kind: "Dropout",
            detail: format!("{} values do not fit in 32 bits", batch * self.size),
        })?;
        Ok(DropoutParams {
            len,
            rate: self.rate,
            seed,
        })
    }
}

impl<B: Backend> Layer<B> for Dropout {
    fn build(
        _backend: &B,
        spec: &LayerSpec,
        input: Shape,
        _max_batch: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        let LayerSpec::Dropout(d) = *spec else {
            return Err(Error::WrongSpec {
                layer: "Dropout",
                spec: spec.kind(),
            });
        };
        let size = checked_output(spec, input)?.size();
        Ok(Self {
            rate: d.rate,
            size,
            rng: rng.fork(0),
            mask_seed: None,
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
        if mode == Mode::Eval || self.rate == 0.0 {
            self.mask_seed = None;
            backend.copy(x, y, batch * self.size)?;
            return Ok(());
        }
        let seed = self.rng.next_u64();
        self.mask_seed = Some(seed);
        backend.dropout_fwd(&self.params(batch, seed)?, x, y)?;
        Ok(())
    }

    fn backward(
        &mut self,
        backend: &B,
        _x: &B::Buffer,
        _y: &B::Buffer,
        dy: &mut B::Buffer,
        dx: Option<&mut B::Buffer>,
        batch: usize,
        _at: GradAt,
    ) -> Result<()> {
        let Some(dx) = dx else {
            return Ok(());
        };
        match self.mask_seed {
            Some(seed) => backend.dropout_bwd(&self.params(batch, seed)?, dy, dx)?,
            None => backend.copy(dy, dx, batch * self.size)?,
        }
        Ok(())
    }
}
