//! Reductions on the GPU: launch code for `reduce.cu`.

use std::sync::PoisonError;

use cudarc::driver::{DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg};

use super::ReduceKernel;
use crate::cuda::launch::{BLOCK, driver_err, in_groups};
use crate::cuda::module::KernelSource;
use crate::cuda::report::{Origin, StatusWord};
use crate::error::check_len;
use crate::{Cuda, CudaBuffer, Error, Result};

/// Per-block sums of squares.
pub(crate) const SUM_SQUARES: &str = "sum_squares_fwd_f32";
/// The non-finite check of up to [`GROUP`] buffers in one launch (one buffer is a
/// group of one).
pub(crate) const CHECK_FINITE_GROUP: &str = "check_finite_group_fwd_f32";

/// Buffers one group check reads (`CHECK_GROUP` in reduce.cu).
const GROUP: usize = 16;

/// `struct FiniteGroup` in reduce.cu.
#[repr(C)]
#[derive(Clone, Copy)]
struct FiniteGroup {
    count: u32,
    len: [u64; GROUP],
    offset: [u64; GROUP],
    x: [u64; GROUP],
}

// SAFETY: `#[repr(C)]` of a `u32` and three arrays of sixteen `u64` (lengths, offsets,
// device addresses), laid out as `struct FiniteGroup` in reduce.cu.
unsafe impl DeviceRepr for FiniteGroup {}

/// The reduction kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "reduce",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("reduce.cu")
    ),
    kernels: &[SUM_SQUARES, CHECK_FINITE_GROUP],
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

    fn check_finite_many<'a>(
        &self,
        xs: impl IntoIterator<Item = (&'a CudaBuffer, usize)>,
    ) -> Result<()>
    where
        Self: 'a,
    {
        const OP: &str = "check_finite";
        let stream = self.stream();
        let mut offset = 0usize;
        let fresh = || FiniteGroup {
            count: 0,
            len: [0; GROUP],
            offset: [0; GROUP],
            x: [0; GROUP],
        };
        let add = |group: &mut FiniteGroup, i: usize, (x, len): (&'a CudaBuffer, usize)| {
            check_len(OP, "x", len, x.len())?;
            if offset + len >= u32::MAX as usize {
                return Err(Error::InvalidParams {
                    op: OP,
                    detail: format!(
                        "{} values exceed what the kernel's reports index",
                        offset + len
                    ),
                });
            }
            if len > 0 {
                group.len[i] = len as u64;
                group.offset[i] = offset as u64;
                group.x[i] = x.data.device_ptr(stream).0;
                offset += len;
            }
            Ok(len)
        };
        let origin = Origin {
            op: OP,
            operand: "x",
            classes: 0,
            steps: 0,
        };
        in_groups(xs, GROUP, fresh, add, |group, count, cfg| {
            let group = FiniteGroup { count, ..*group };
            let f = self.function(&MODULE, CHECK_FINITE_GROUP)?;
            self.with_reports(&[(StatusWord::NonFinite, origin)], |status| {
                let mut args = stream.launch_builder(&f);
                args.arg(&group).arg(status);
                // SAFETY: block row `t < count` reads `len[t]` values (each checked
                // against its buffer above) at the address of a buffer borrowed for
                // this call, and reports through the status words.
                unsafe { args.launch(cfg) }.map_err(|e| driver_err(OP, e))?;
                Ok(())
            })
        })
    }

    fn check_finite(&self, x: &CudaBuffer, len: usize) -> Result<()> {
        self.check_finite_many([(x, len)])
    }
}
