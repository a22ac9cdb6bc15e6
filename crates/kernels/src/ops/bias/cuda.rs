//! Bias on the GPU: launch code for `bias.cu`.

use cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};

use super::cpu::check_epilogue;
use super::{BiasKernel, BiasParams};
use crate::cuda::launch::{driver_err, elementwise};
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::ops::us;
use crate::{Cuda, CudaBuffer, Result};

/// Bias and epilogue activation.
pub(crate) const FWD: &str = "bias_fwd_f32";
/// Column sums of the output gradient.
pub(crate) const BWD: &str = "bias_bwd_f32";

/// The bias kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "bias",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("bias.cu")
    ),
    kernels: &[FWD, BWD],
    fmad: false,
};

/// Rows of threads a block of the backward kernel (`BIAS_ROWS` in bias.cu).
const BWD_ROWS: u32 = 8;

// SAFETY: `#[repr(C)]` of three `u32` (the activation is a `#[repr(u32)]` enum) and an
// `f32`, matching `struct BiasParams` in bias.cu.
unsafe impl DeviceRepr for BiasParams {}

impl Cuda {
    /// `dbias[c] += sum_r dy[r, c]` over `p.rows x p.cols` (lengths checked by the
    /// caller); the convolution's bias gradient too.
    pub(crate) fn column_sums(
        &self,
        op: &'static str,
        p: &BiasParams,
        dy: &CudaBuffer,
        dbias: &mut CudaBuffer,
    ) -> Result<()> {
        if p.rows == 0 || p.cols == 0 {
            return Ok(());
        }
        let f = self.function(&MODULE, BWD)?;
        let bands = us(p.rows).div_ceil(BWD_ROWS as usize * 16).clamp(1, 1024) as u32;
        let cfg = LaunchConfig {
            grid_dim: (p.cols.div_ceil(32), bands, 1),
            block_dim: (32, BWD_ROWS, 1),
            shared_mem_bytes: 0,
        };
        let mut args = self.stream().launch_builder(&f);
        args.arg(p).arg(&dy.data).arg(&mut dbias.data);
        // SAFETY: the kernel reads `dy[0..rows * cols]` and adds to `dbias[0..cols]`;
        // the caller checked both lengths.
        unsafe { args.launch(cfg) }.map_err(|e| driver_err(op, e))?;
        Ok(())
    }
}

impl BiasKernel for Cuda {
    fn bias_activation(&self, p: &BiasParams, bias: &CudaBuffer, y: &mut CudaBuffer) -> Result<()> {
        const OP: &str = "bias_activation";
        let (rows, cols) = (us(p.rows), us(p.cols));
        check_epilogue(OP, p.activation)?;
        check_len(OP, "bias", cols, bias.len())?;
        check_len(OP, "y", rows * cols, y.len())?;
        if rows * cols == 0 {
            return Ok(());
        }
        let f = self.function(&MODULE, FWD)?;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p).arg(&bias.data).arg(&mut y.data);
        // SAFETY: the kernel reads `bias[0..cols]` and updates `y[0..rows * cols]`;
        // both lengths are checked above.
        unsafe { args.launch(elementwise(rows * cols)) }.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }

    fn bias_grad(&self, p: &BiasParams, dy: &CudaBuffer, dbias: &mut CudaBuffer) -> Result<()> {
        let (rows, cols) = (us(p.rows), us(p.cols));
        check_len("bias_grad", "dy", rows * cols, dy.len())?;
        check_len("bias_grad", "dbias", cols, dbias.len())?;
        self.column_sums("bias_grad", p, dy, dbias)
    }
}
