//! Bias on the CPU.

use super::{BiasKernel, BiasParams};
use crate::error::check_len;
use crate::ops::activation::ActivationKind;
use crate::ops::activation::cpu::forward_elementwise;
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Error, Result};

/// Refuses activations that cannot run as an epilogue.
pub(crate) fn check_epilogue(op: &'static str, activation: ActivationKind) -> Result<()> {
    if activation.fuses_into_epilogue() {
        Ok(())
    } else {
        Err(Error::InvalidParams {
            op,
            detail: format!(
                "{activation:?} cannot be fused after a bias; apply it as an op of its own"
            ),
        })
    }
}

/// `y = act(y + bias)` row by row, in one parallel pass.
pub(crate) fn bias_activation_rows(cpu: &Cpu, p: &BiasParams, bias: &[f32], y: &mut [f32]) {
    let (rows, cols) = (us(p.rows), us(p.cols));
    let chunk = cpu.chunk_for(rows, 64) * cols;
    cpu.par_chunks_mut(y, chunk, |_, part| {
        for row in part.chunks_exact_mut(cols) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
        forward_elementwise(p.activation, p.negative_slope, part);
    });
}

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
    fn bias_activation(&self, p: &BiasParams, bias: &CpuBuffer, y: &mut CpuBuffer) -> Result<()> {
        const OP: &str = "bias_activation";
        let (rows, cols) = (us(p.rows), us(p.cols));
        check_epilogue(OP, p.activation)?;
        check_len(OP, "bias", cols, bias.as_slice().len())?;
        check_len(OP, "y", rows * cols, y.as_slice().len())?;
        bias_activation_rows(
            self,
            p,
            &bias.as_slice()[..cols],
            &mut y.as_mut_slice()[..rows * cols],
        );
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
