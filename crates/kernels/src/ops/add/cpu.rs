//! The sum on the CPU.

use super::{AddKernel, AddParams};
use crate::error::check_len;
use crate::ops::activation::cpu::forward_elementwise;
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Result};

/// Values summed before the activation runs over them: a block of the output and of
/// both inputs stays in L1, so the activation reads the sums from there, and each
/// loop is simple enough to vectorise.
const BLOCK: usize = 1024;

impl Cpu {
    /// `y = act(a + b)`, or `y = act(a + y)` without `b`, over `y`'s length.
    fn add_apply(&self, p: &AddParams, a: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
        let (kind, slope) = (p.activation, p.negative_slope);
        // As `Storage::copy`: one core alone does not saturate the memory system.
        let chunk = self.chunk_for(y.len(), 1 << 14);
        self.par_chunks_mut(y, chunk, |t, part| {
            let start = t * chunk;
            for (k, out) in part.chunks_mut(BLOCK).enumerate() {
                let span = start + k * BLOCK..start + k * BLOCK + out.len();
                let a = &a[span.clone()];
                match b {
                    Some(b) => {
                        for ((o, x), y) in out.iter_mut().zip(a).zip(&b[span]) {
                            *o = x + y;
                        }
                    }
                    None => {
                        for (o, x) in out.iter_mut().zip(a) {
                            *o += x;
                        }
                    }
                }
                forward_elementwise(kind, slope, out);
            }
        });
    }
}

impl AddKernel for Cpu {
    fn add_fwd(
        &self,
        p: &AddParams,
        a: &CpuBuffer,
        b: &CpuBuffer,
        y: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "add_fwd";
        let len = us(p.len);
        p.check(OP)?;
        check_len(OP, "a", len, a.as_slice().len())?;
        check_len(OP, "b", len, b.as_slice().len())?;
        check_len(OP, "y", len, y.as_slice().len())?;
        self.add_apply(
            p,
            &a.as_slice()[..len],
            Some(&b.as_slice()[..len]),
            &mut y.as_mut_slice()[..len],
        );
        Ok(())
    }

    fn add_fwd_inplace(&self, p: &AddParams, a: &CpuBuffer, y: &mut CpuBuffer) -> Result<()> {
        const OP: &str = "add_fwd_inplace";
        let len = us(p.len);
        p.check(OP)?;
        check_len(OP, "a", len, a.as_slice().len())?;
        check_len(OP, "y", len, y.as_slice().len())?;
        self.add_apply(p, &a.as_slice()[..len], None, &mut y.as_mut_slice()[..len]);
        Ok(())
    }
}
