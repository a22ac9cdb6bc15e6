//! Inverted dropout.

use kiln_kernels::Backend;
use kiln_kernels::ops::dropout::DropoutParams;
use kiln_kernels::rng::Rng;
use kiln_shape::{DropoutSpec, Shape};

use crate::layer::{checked_output, overwrite_only};
use crate::{Backward, Error, Layer, Mode, Result};

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
    type Spec = DropoutSpec;

    fn build(
        _backend: &B,
        spec: &DropoutSpec,
        input: Shape,
        _max_batch: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        let size = checked_output(spec, input)?.size();
        Ok(Self {
            rate: spec.rate,
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

    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let Some(dx) = overwrite_only("Dropout", pass.dx)? else {
            return Ok(());
        };
        match self.mask_seed {
            Some(seed) => backend.dropout_bwd(&self.params(pass.batch, seed)?, pass.dy, dx)?,
            None => backend.copy(pass.dy, dx, pass.batch * self.size)?,
        }
        Ok(())
    }
}
