//! Reductions on the GPU: launch code for `reduce.cu`.

use std::sync::PoisonError;

use cudarc::driver::{LaunchConfig, PushKernelArg};

use super::ReduceKernel;
use crate::cuda::launch::{BLOCK, driver_err, elementwise};
use crate::cuda::module::KernelSource;
use crate::cuda::report::{Origin, StatusWord};
use crate::error::check_len;
use crate::{Cuda, CudaBuffer, Error, Result};

/// Per-block sums of squares.
pub(crate) const SUM_SQUARES: &str = "sum_squares_fwd_f32";
/// The non-finite check.
pub(crate) const CHECK_FINITE: &str = "check_finite_fwd_f32";

/// The reduction kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "reduce",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("reduce.cu")
    ),
    kernels: &[SUM_SQUARES, CHECK_FINITE],
    fmad: false,
};

/// Blocks at most, so partials the host adds.
const BLOCKS: usize = 256;

impl ReduceKernel for Cuda {
    fn sum_squares(&self, x: &CudaBuffer, len: usize) -> Result<f64> {
        const OP: &str = "sum_squares";
        check_len(OP, "x", len, x.len())?;
        if len == 0 {
            return Ok(0.0);
        }
        let blocks = len.div_ceil(BLOCK as usize).clamp(1, BLOCKS);
        let f = self.function(&MODULE, SUM_SQUARES)?;
        let mut partials = self
            .inner()
            .partials
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let partials = match &mut *partials {
            Some(p) => p,
            slot => slot.insert(
                self.stream()
                    .alloc_zeros::<f64>(BLOCKS)
                    .map_err(|e| driver_err(OP, e))?,
            ),
        };
        let n = len as u64;
        let cfg = LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut args = self.stream().launch_builder(&f);
        args.arg(&x.data).arg(&n).arg(&mut *partials);
        // SAFETY: the kernel reads `x[0..len]` (length checked above) and writes
        // `partials[0..blocks]`, which holds `BLOCKS >= blocks` values.
        unsafe { args.launch(cfg) }.map_err(|e| driver_err(OP, e))?;
        let mut host = [0.0f64; BLOCKS];
        self.stream()
            .memcpy_dtoh(&partials.slice(..blocks), &mut host[..blocks])
            .map_err(|e| driver_err(OP, e))?;
        self.synchronize()?;
        Ok(host[..blocks].iter().sum())
    }

    fn check_finite(&self, x: &CudaBuffer, len: usize) -> Result<()> {
        const OP: &str = "check_finite";
        check_len(OP, "x", len, x.len())?;
        if len == 0 {
            return Ok(());
        }
        if len >= u32::MAX as usize {
            return Err(Error::InvalidParams {
                op: OP,
                detail: format!("{len} values exceed what the kernel's reports index"),
            });
        }
        let f = self.function(&MODULE, CHECK_FINITE)?;
        let n = len as u64;
        let origin = Origin {
            op: OP,
            operand: "x",
            classes: 0,
        };
        self.with_reports(&[(StatusWord::NonFinite, origin)], |status| {
            let mut args = self.stream().launch_builder(&f);
            args.arg(&x.data).arg(&n).arg(status);
            // SAFETY: the kernel reads `x[0..len]` (length checked above) and reports
            // through the status words.
            unsafe { args.launch(elementwise(len)) }.map_err(|e| driver_err(OP, e))
        })?;
        Ok(())
    }
}
