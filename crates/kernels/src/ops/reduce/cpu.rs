//! Reductions on the CPU: a fixed number of bands summed in parallel, then added in
//! band order, so the result does not depend on the thread count or on scheduling.

use super::ReduceKernel;
use crate::cpu::SendPtr;
use crate::error::check_len;
use crate::{Cpu, CpuBuffer, Error, Result};

/// Elements below which one thread sums everything.
const SERIAL: usize = 1 << 15;
/// Bands a large reduction is cut into (fixed: it fixes the summation order).
const BANDS: usize = 32;

/// `sum(v^2)` in `f64`, eight lanes wide so the loop vectorises.
fn sum_squares_serial(part: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut lanes = part.chunks_exact(8);
    for v in &mut lanes {
        for (a, &v) in acc.iter_mut().zip(v) {
            *a += f64::from(v) * f64::from(v);
        }
    }
    let tail: f64 = lanes
        .remainder()
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum();
    acc.iter().sum::<f64>() + tail
}

impl ReduceKernel for Cpu {
    fn sum_squares(&self, x: &CpuBuffer, len: usize) -> Result<f64> {
        check_len("sum_squares", "x", len, x.as_slice().len())?;
        let x = &x.as_slice()[..len];
        if len < SERIAL {
            return Ok(sum_squares_serial(x));
        }
        let band = len.div_ceil(BANDS);
        let mut sums = [0.0f64; BANDS];
        let out = SendPtr(sums.as_mut_ptr());
        self.inner().pool.run(BANDS, &|t, _| {
            let start = (t * band).min(len);
            let value = sum_squares_serial(&x[start..(start + band).min(len)]);
            // SAFETY: task `t` writes only element `t` of `sums`, which outlives `run`.
            unsafe { *out.get().add(t) = value };
        });
        Ok(sums.iter().sum())
    }

    fn check_finite(&self, x: &CpuBuffer, len: usize) -> Result<()> {
        // The sum of squares is finite exactly when every value is (each square is at
        // most f32::MAX^2, far inside f64); only a failure pays for the search.
        if self.sum_squares(x, len)?.is_finite() {
            return Ok(());
        }
        let x = &x.as_slice()[..len];
        match x.iter().position(|v| !v.is_finite()) {
            Some(index) => Err(Error::NonFinite {
                op: "check_finite",
                operand: "x",
                index,
                value: x[index],
            }),
            None => Ok(()),
        }
    }
}
