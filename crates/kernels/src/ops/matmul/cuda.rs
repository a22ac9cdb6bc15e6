//! The matrix product on the GPU: launch code for `matmul.cu` (on the tiled SGEMM of
//! `gemm.cuh`, which the convolution shares).

use cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};

use super::{MatmulKernel, MatmulParams};
use crate::cuda::launch::driver_err;
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::ops::us;
use crate::{Cuda, CudaBuffer, Error, Result};

/// The product.
pub(crate) const FWD: &str = "matmul_fwd_f32";

/// The matrix-product kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "matmul",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("gemm.cuh"),
        include_str!("matmul.cu")
    ),
    kernels: &[FWD],
    fmad: true,
};

/// Rows and columns of C a block computes (`GEMM_BM`, `GEMM_BN` in gemm.cuh).
pub(crate) const TILE: u32 = 64;
/// Threads a block (`GEMM_THREADS`).
pub(crate) const THREADS: u32 = 256;

// SAFETY: `#[repr(C)]` of three `u32` and three `bool` (one byte each, 0 or 1),
// padded to 16 bytes, matching `struct MatmulParams` in matmul.cu.
unsafe impl DeviceRepr for MatmulParams {}

/// The grid for a `rows x cols` result, with `splits` slices of K along z: row tiles
/// along x, column tiles along y (at most 65,535 of them).
pub(crate) fn gemm_grid(
    op: &'static str,
    rows: usize,
    cols: usize,
    splits: u32,
) -> Result<LaunchConfig> {
    let (row_tiles, col_tiles) = (rows.div_ceil(TILE as usize), cols.div_ceil(TILE as usize));
    if col_tiles > 65_535 || row_tiles > i32::MAX as usize {
        return Err(Error::InvalidParams {
            op,
            detail: format!("a {rows} x {cols} product exceeds what one launch covers"),
        });
    }
    Ok(LaunchConfig {
        grid_dim: (row_tiles as u32, col_tiles as u32, splits),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

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
        let cfg = gemm_grid(OP, m, n, 1)?;
        let f = self.function(&MODULE, FWD)?;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p).arg(&a.data).arg(&b.data).arg(&mut c.data);
        // SAFETY: the kernel reads `a[0..m * k]` and `b[0..k * n]` and writes (or
        // updates) `c[0..m * n]`; all three lengths are checked above.
        unsafe { args.launch(cfg) }.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }
}
