//! Dropout on the CPU.

use super::{DropoutKernel, DropoutParams};
use crate::error::check_len;
use crate::rng::uniform_at;
use crate::{Cpu, CpuBuffer, Result};

impl Cpu {
    fn dropout_apply(&self, p: &DropoutParams, src: &[f32], dst: &mut [f32]) {
        let scale = 1.0 / (1.0 - p.rate);
        let chunk = self.chunk_for(dst.len(), 4096);
        self.par_chunks_mut(dst, chunk, |t, out| {
            let start = t * chunk;
            for (i, (o, &v)) in out.iter_mut().zip(&src[start..]).enumerate() {
                let keep = uniform_at(p.seed, (start + i) as u64) >= p.rate;
                *o = if keep { v * scale } else { 0.0 };
            }
        });
    }
}

impl DropoutKernel for Cpu {
    fn dropout_fwd(&self, p: &DropoutParams, x: &CpuBuffer, y: &mut CpuBuffer) -> Result<()> {
        let len = p.len as usize;
        check_len("dropout_fwd", "x", len, x.as_slice().len())?;
        check_len("dropout_fwd", "y", len, y.as_slice().len())?;
        self.dropout_apply(p, &x.as_slice()[..len], &mut y.as_mut_slice()[..len]);
        Ok(())
    }

    fn dropout_bwd(&self, p: &DropoutParams, dy: &CpuBuffer, dx: &mut CpuBuffer) -> Result<()> {
        let len = p.len as usize;
        check_len("dropout_bwd", "dy", len, dy.as_slice().len())?;
        check_len("dropout_bwd", "dx", len, dx.as_slice().len())?;
        self.dropout_apply(p, &dy.as_slice()[..len], &mut dx.as_mut_slice()[..len]);
        Ok(())
    }
}
