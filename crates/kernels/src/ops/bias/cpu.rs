//! Bias on the CPU.

use super::{BiasKernel, BiasParams};
use crate::error::check_len;
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Result};

/// `out[c] += sum_r data[r * cols + c]`, row by row (the inner loop vectorises).
pub(crate) fn column_sums_into(_cpu: &Cpu, data: &[f32], cols: usize, out: &mut [f32]) {
    if cols == 0 {
        return;
    }
    for row in data.chunks_exact(cols) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

impl BiasKernel for Cpu {
    fn bias_add(&self, p: &BiasParams, bias: &CpuBuffer, y: &mut CpuBuffer) -> Result<()> {
        let (rows, cols) = (us(p.rows), us(p.cols));
        check_len("bias_add", "bias", cols, bias.as_slice().len())?;
        check_len("bias_add", "y", rows * cols, y.as_slice().len())?;
        let b = &bias.as_slice()[..cols];
        let chunk = self.chunk_for(rows, 64) * cols;
        self.par_chunks_mut(&mut y.as_mut_slice()[..rows * cols], chunk, |_, part| {
            for row in part.chunks_exact_mut(cols) {
                for (v, b) in row.iter_mut().zip(b) {
                    *v += b;
                }
            }
        });
        Ok(())
    }

    fn bias_grad(&self, p: &BiasParams, dy: &CpuBuffer, dbias: &mut CpuBuffer) -> Result<()> {
        let (rows, cols) = (us(p.rows), us(p.cols));
        check_len("bias_grad", "dy", rows * cols, dy.as_slice().len())?;
        check_len("bias_grad", "dbias", cols, dbias.as_slice().len())?;
        column_sums_into(
            self,
            &dy.as_slice()[..rows * cols],
            cols,
            &mut dbias.as_mut_slice()[..cols],
        );
        Ok(())
    }
}
