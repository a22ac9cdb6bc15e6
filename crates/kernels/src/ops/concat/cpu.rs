//! Concatenation on the CPU.

use super::{ConcatKernel, ConcatParams};
use crate::error::check_len;
use crate::ops::{InputGrad, us};
use crate::{Cpu, CpuBuffer, Result};

impl Cpu {
    /// Rows a task, enough that each moves 16K values or more.
    fn concat_rows_per_task(&self, p: &ConcatParams) -> usize {
        self.chunk_for(us(p.rows), (1usize << 14).div_ceil(us(p.width)))
    }
}

impl ConcatKernel for Cpu {
    fn concat_fwd(&self, p: &ConcatParams, x: &CpuBuffer, y: &mut CpuBuffer) -> Result<()> {
        const OP: &str = "concat_fwd";
        p.check(OP)?;
        check_len(OP, "x", p.input_len(), x.as_slice().len())?;
        check_len(OP, "y", p.output_len(), y.as_slice().len())?;
        if p.input_len() == 0 {
            return Ok(());
        }
        let (width, total, offset) = (us(p.width), us(p.total), us(p.offset));
        let x = &x.as_slice()[..p.input_len()];
        let rows = self.concat_rows_per_task(p);
        let y = &mut y.as_mut_slice()[..p.output_len()];
        self.par_chunks_mut(y, rows * total, |t, part| {
            let x = &x[t * rows * width..];
            for (y, x) in part.chunks_exact_mut(total).zip(x.chunks_exact(width)) {
                y[offset..offset + width].copy_from_slice(x);
            }
        });
        Ok(())
    }

    fn concat_bwd(
        &self,
        p: &ConcatParams,
        dy: &CpuBuffer,
        dx: InputGrad<'_, CpuBuffer>,
    ) -> Result<()> {
        const OP: &str = "concat_bwd";
        p.check(OP)?;
        check_len(OP, "dy", p.output_len(), dy.as_slice().len())?;
        check_len(OP, "dx", p.input_len(), dx.buffer.as_slice().len())?;
        if p.input_len() == 0 {
            return Ok(());
        }
        let (width, total, offset) = (us(p.width), us(p.total), us(p.offset));
        let dy = &dy.as_slice()[..p.output_len()];
        let rows = self.concat_rows_per_task(p);
        let accumulate = dx.accumulate;
        let dx = &mut dx.buffer.as_mut_slice()[..p.input_len()];
        self.par_chunks_mut(dx, rows * width, |t, part| {
            let dy = &dy[t * rows * total..];
            for (dx, dy) in part.chunks_exact_mut(width).zip(dy.chunks_exact(total)) {
                let dy = &dy[offset..offset + width];
                if accumulate {
                    for (d, g) in dx.iter_mut().zip(dy) {
                        *d += g;
                    }
                } else {
                    dx.copy_from_slice(dy);
                }
            }
        });
        Ok(())
    }
}
