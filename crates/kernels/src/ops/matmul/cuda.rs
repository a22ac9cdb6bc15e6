//! The matrix product on the GPU: launch code for `matmul.cu`, on the SGEMM core of
//! `cuda/gemm.cuh` in the tile and slices of K that a [`Plan`] chooses.

use cudarc::driver::{DeviceRepr, PushKernelArg};

use super::{MatmulKernel, MatmulParams};
use crate::cuda::gemm::{Plan, TILES, tile_kernels};
use crate::cuda::launch::driver_err;
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::ops::us;
use crate::{Cuda, CudaBuffer, Result};

/// The product, one kernel a tile.
pub(crate) const FWD: [&str; TILES] = tile_kernels!("matmul_fwd_f32");

/// The matrix-product kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "matmul",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("../../cuda/gemm.cuh"),
        include_str!("matmul.cu")
    ),
    kernels: &FWD,
    fmad: true,
};

// SAFETY: `#[repr(C)]` of three `u32` and three `bool` (one byte each, 0 or 1),
// padded to 16 bytes, matching `struct MatmulParams` in matmul.cu.
unsafe impl DeviceRepr for MatmulParams {}

impl MatmulKernel for Cuda {
    fn matmul(
        &self,
        p: &MatmulParams,
        a: &CudaBuffer,
        b: &CudaBuffer,
        c: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "matmul";
        let (m, n, k) = (us(p.m), us(p.n), us(p.k));
        check_len(OP, "a", m * k, a.len())?;
        check_len(OP, "b", k * n, b.len())?;
        check_len(OP, "c", m * n, c.len())?;
        if m * n == 0 {
            return Ok(());
        }
        let sms = self.multiprocessors();
        let plan = if p.accumulate {
            Plan::split(m, n, k, sms)
        } else {
            Plan::split_if_short(m, n, k, sms)
        };
        if !p.accumulate {
            plan.zero_if_split(self, c, m * n)?;
        }
        let (tile, cfg) = plan.grid(OP, m, n)?;
        let f = self.function(&MODULE, tile.kernel(&FWD))?;
        // `k` fits in 32 bits (`MatmulParams` holds it), so `chunk <= k` does too.
        let chunk = plan.chunk as u32;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p)
            .arg(&a.data)
            .arg(&b.data)
            .arg(&mut c.data)
            .arg(&chunk);
        // SAFETY: the kernel reads `a[0..m * k]` and `b[0..k * n]` and writes (or
        // adds to) `c[0..m * n]`; all three lengths are checked above.
        unsafe { args.launch(cfg) }.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }
}
