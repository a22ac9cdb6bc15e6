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

/// `out[c] += sum_r data[r * cols + c]`: each thread sums a band of rows into its own
/// partial (the inner loop vectorises), then the partials are added in thread order,
/// so the result is the same on every run.
pub(crate) fn column_sums_into(cpu: &Cpu, data: &[f32], cols: usize, out: &mut [f32]) {
    if cols == 0 {
        return;
    }
    let rows = data.len() / cols;
    let parts = cpu.threads().min(rows / 64).max(1);
    let sum_band = |band: &[f32], acc: &mut [f32]| {
        for row in band.chunks_exact(cols) {
            for (a, v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
    };
    if parts == 1 {
        sum_band(data, out);
        return;
    }
    let inner = cpu.inner();
    let mut partials = inner
        .partials
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if partials.len() < parts * cols {
        partials.resize(parts * cols, 0.0);
    }
    let band = rows.div_ceil(parts) * cols;
    let partials = &mut partials[..parts * cols];
    cpu.par_chunks_mut(partials, cols, |t, acc| {
        acc.fill(0.0);
        let start = (t * band).min(data.len());
        sum_band(&data[start..(start + band).min(data.len())], acc);
    });
    for acc in partials.chunks_exact(cols) {
        for (o, a) in out.iter_mut().zip(acc) {
            *o += a;
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
