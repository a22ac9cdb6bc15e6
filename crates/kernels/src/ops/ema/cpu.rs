//! The moving average on the CPU: the tensor cut into chunks, one task each. On
//! x86-64 with AVX2 the loop is compiled a second time for eight-wide vectors (no FMA
//! contraction, so both builds round alike, and as the GPU's kernel).

use super::{EmaKernel, EmaParams};
use crate::error::check_len;
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Result};

/// `torch.lerp` of one chunk: `average += weight * (value - average)` below one half,
/// `average = value - (value - average) * (1 - weight)` from one half on.
#[inline(always)]
fn blend(weight: f32, average: &mut [f32], value: &[f32]) {
    if weight < 0.5 {
        for (a, &v) in average.iter_mut().zip(value) {
            *a += weight * (v - *a);
        }
    } else {
        let keep = 1.0 - weight;
        for (a, &v) in average.iter_mut().zip(value) {
            *a = v - (v - *a) * keep;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn blend_avx2(weight: f32, average: &mut [f32], value: &[f32]) {
    blend(weight, average, value);
}

fn blend_dispatch(weight: f32, average: &mut [f32], value: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { blend_avx2(weight, average, value) };
        return;
    }
    blend(weight, average, value);
}

impl EmaKernel for Cpu {
    fn ema_update(&self, p: &EmaParams, average: &mut CpuBuffer, value: &CpuBuffer) -> Result<()> {
        const OP: &str = "ema_update";
        let len = us(p.len);
        check_len(OP, "average", len, average.as_slice().len())?;
        check_len(OP, "value", len, value.as_slice().len())?;
        let value = &value.as_slice()[..len];
        // As the optimizer's update: one core alone does not saturate the memory
        // system on a large tensor.
        let chunk = self.chunk_for(len, 16_384);
        self.par_chunks_mut(&mut average.as_mut_slice()[..len], chunk, |t, part| {
            let start = t * chunk;
            blend_dispatch(p.weight, part, &value[start..start + part.len()]);
        });
        Ok(())
    }
}
