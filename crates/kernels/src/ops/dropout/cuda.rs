//! Dropout on the GPU: launch code for `dropout.cu`.

use cudarc::driver::{DeviceRepr, PushKernelArg};

use super::{DropoutKernel, DropoutParams};
use crate::cuda::launch::{driver_err, elementwise};
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::{Cuda, CudaBuffer, Result};

/// Forward.
pub(crate) const FWD: &str = "dropout_fwd_f32";
/// Backward.
pub(crate) const BWD: &str = "dropout_bwd_f32";

/// The dropout kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "dropout",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("dropout.cu")
    ),
    kernels: &[FWD, BWD],
    fmad: false,
};

// SAFETY: `#[repr(C)]` of a `u32`, an `f32` and a `u64` (16 bytes, the `u64` at offset
// 8), matching `struct DropoutParams` in dropout.cu.
unsafe impl DeviceRepr for DropoutParams {}

impl Cuda {
    fn dropout_launch(
        &self,
        (op, name): (&'static str, &'static str),
        (src_name, dst_name): (&'static str, &'static str),
        p: &DropoutParams,
        src: &CudaBuffer,
        dst: &mut CudaBuffer,
    ) -> Result<()> {
        let len = p.len as usize;
        check_len(op, src_name, len, src.len())?;
        check_len(op, dst_name, len, dst.len())?;
        if len == 0 {
            return Ok(());
        }
        let f = self.function(&MODULE, name)?;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p).arg(&src.data).arg(&mut dst.data);
        // SAFETY: the kernel reads `src[0..len]` and writes `dst[0..len]`; both lengths
        // are checked above.
        unsafe { args.launch(elementwise(len)) }.map_err(|e| driver_err(op, e))?;
        Ok(())
    }
}

impl DropoutKernel for Cuda {
    fn dropout_fwd(&self, p: &DropoutParams, x: &CudaBuffer, y: &mut CudaBuffer) -> Result<()> {
        self.dropout_launch(("dropout_fwd", FWD), ("x", "y"), p, x, y)
    }

    fn dropout_bwd(&self, p: &DropoutParams, dy: &CudaBuffer, dx: &mut CudaBuffer) -> Result<()> {
        self.dropout_launch(("dropout_bwd", BWD), ("dy", "dx"), p, dy, dx)
    }
}
