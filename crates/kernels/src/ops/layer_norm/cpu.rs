//! Layer normalisation on the CPU: rows on the pool, the parameters' gradients
//! summed one column block a task.

use super::{LayerNormKernel, LayerNormParams};
use crate::error::check_len;
use crate::ops::us;
use crate::cpu::SendPtr;
use crate::{Cpu, CpuBuffer, Result};

fn check(op: &'static str, p: &LayerNormParams, x: usize, gamma: usize, stats: usize) -> Result<()> {
    check_len(op, "x", p.len(), x)?;
    check_len(op, "gamma", us(p.cols), gamma)?;
    check_len(op, "stats", 2 * us(p.rows), stats)
}

/// Rows a task: enough work to be worth handing to a thread.
fn rows_a_task(p: &LayerNormParams) -> usize {
    (16_384 / us(p.cols).max(1)).max(1)
}

impl LayerNormKernel for Cpu {
    fn layer_norm_fwd(
        &self,
        p: &LayerNormParams,
        x: &CpuBuffer,
        gamma: &CpuBuffer,
        beta: &CpuBuffer,
        y: &mut CpuBuffer,
        stats: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "layer_norm_fwd";
        check(OP, p, x.as_slice().len(), gamma.as_slice().len(), stats.as_slice().len())?;
        check_len(OP, "beta", us(p.cols), beta.as_slice().len())?;
        check_len(OP, "y", p.len(), y.as_slice().len())?;
        let (rows, cols) = (us(p.rows), us(p.cols));
        if p.is_empty() {
            return Ok(());
        }
        let (x, gamma, beta) = (x.as_slice(), gamma.as_slice(), beta.as_slice());
        let (y, stats) = (SendPtr(y.as_mut_slice().as_mut_ptr()), SendPtr(stats.as_mut_slice().as_mut_ptr()));
        let per = rows_a_task(p);
        self.inner().pool.run(rows.div_ceil(per), &|task, _| {
            for r in task * per..((task + 1) * per).min(rows) {
                let xr = &x[r * cols..(r + 1) * cols];
                // SAFETY: row `r` of `y` and its two statistics belong to this task
                // alone (tasks are disjoint row ranges), inside the checked lengths.
                let (yr, mean_r, rstd_r) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(y.get().add(r * cols), cols),
                        &mut *stats.get().add(r),
                        &mut *stats.get().add(rows + r),
                    )
                };
                let mean = xr.iter().map(|&v| f64::from(v)).sum::<f64>() / cols as f64;
                let var = xr
                    .iter()
                    .map(|&v| (f64::from(v) - mean).powi(2))
                    .sum::<f64>()
                    / cols as f64;
                let rstd = (1.0 / (var + f64::from(p.epsilon)).sqrt()) as f32;
                let mean = mean as f32;
                for (((o, &v), &g), &b) in yr.iter_mut().zip(xr).zip(gamma).zip(beta) {
                    *o = (v - mean) * rstd * g + b;
                }
                *mean_r = mean;
                *rstd_r = rstd;
            }
        });
        Ok(())
    }

    fn layer_norm_bwd(
        &self,
        p: &LayerNormParams,
        x: &CpuBuffer,
        gamma: &CpuBuffer,
        stats: &CpuBuffer,
        dy: &CpuBuffer,
        dx: Option<&mut CpuBuffer>,
        dgamma: &mut CpuBuffer,
        dbeta: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "layer_norm_bwd";
        check(OP, p, x.as_slice().len(), gamma.as_slice().len(), stats.as_slice().len())?;
        check_len(OP, "dy", p.len(), dy.as_slice().len())?;
        check_len(OP, "dgamma", us(p.cols), dgamma.as_slice().len())?;
        check_len(OP, "dbeta", us(p.cols), dbeta.as_slice().len())?;
        let (rows, cols) = (us(p.rows), us(p.cols));
        if p.is_empty() {
            return Ok(());
        }
        let (x, gamma, stats, dy) = (x.as_slice(), gamma.as_slice(), stats.as_slice(), dy.as_slice());
        let (mean, rstd) = stats.split_at(rows);
        let xhat = |r: usize, c: usize| (x[r * cols + c] - mean[r]) * rstd[r];
        if let Some(dx) = dx {
            check_len(OP, "dx", p.len(), dx.as_slice().len())?;
            let dx = SendPtr(dx.as_mut_slice().as_mut_ptr());
            let accumulate = p.accumulate != 0;
            let per = rows_a_task(p);
            self.inner().pool.run(rows.div_ceil(per), &|task, _| {
                for r in task * per..((task + 1) * per).min(rows) {
                    let dyr = &dy[r * cols..(r + 1) * cols];
                    let (mut sum_g, mut sum_gx) = (0.0f32, 0.0f32);
                    for (c, (&d, &g)) in dyr.iter().zip(gamma).enumerate() {
                        sum_g += d * g;
                        sum_gx += d * g * xhat(r, c);
                    }
                    let (mg, mgx) = (sum_g / cols as f32, sum_gx / cols as f32);
                    // SAFETY: row `r` of `dx` belongs to this task alone, inside the
                    // checked length.
                    let dxr = unsafe { std::slice::from_raw_parts_mut(dx.get().add(r * cols), cols) };
                    for (c, ((o, &d), &g)) in dxr.iter_mut().zip(dyr).zip(gamma).enumerate() {
                        let v = rstd[r] * (d * g - mg - xhat(r, c) * mgx);
                        *o = if accumulate { *o + v } else { v };
                    }
                }
            });
        }
        let (dgamma, dbeta) = (dgamma.as_mut_slice(), dbeta.as_mut_slice());
        for r in 0..rows {
            let dyr = &dy[r * cols..(r + 1) * cols];
            for (c, ((dg, db), &d)) in dgamma.iter_mut().zip(dbeta.iter_mut()).zip(dyr).enumerate() {
                *dg += d * xhat(r, c);
                *db += d;
            }
        }
        Ok(())
    }
}
