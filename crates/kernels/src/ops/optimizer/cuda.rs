//! Optimizer updates on the GPU: launch code for `optimizer.cu`.

use cudarc::driver::{DeviceRepr, PushKernelArg};

use super::{OptimizerKernel, OptimizerParams};
use crate::cuda::launch::{driver_err, elementwise};
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::ops::us;
use crate::{Cuda, CudaBuffer, Result};

/// The fused update of one tensor.
pub(crate) const FWD: &str = "optimizer_fwd_f32";

/// The optimizer kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "optimizer",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("optimizer.cu")
    ),
    kernels: &[FWD],
    fmad: false,
};

// SAFETY: `#[repr(C)]` of three `u32` (the kind a `#[repr(u32)]` enum) and fourteen
// `f32`, matching `struct OptimizerParams` in optimizer.cu.
unsafe impl DeviceRepr for OptimizerParams {}

impl OptimizerKernel for Cuda {
    fn optimizer_step(
        &self,
        p: &OptimizerParams,
        param: &mut CudaBuffer,
        grad: &CudaBuffer,
        state: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "optimizer_step";
        let len = us(p.len);
        check_len(OP, "param", len, param.len())?;
        check_len(OP, "grad", len, grad.len())?;
        check_len(OP, "state", p.slots() * len, state.len())?;
        if len == 0 {
            return Ok(());
        }
        let f = self.function(&MODULE, FWD)?;
        self.with_reports(&[], |status| {
            let mut args = self.stream().launch_builder(&f);
            args.arg(p)
                .arg(&mut param.data)
                .arg(&grad.data)
                .arg(&mut state.data)
                .arg(&*status);
            // SAFETY: the kernel updates `param[0..len]`, reads `grad[0..len]`, touches
            // only the `slots()` state slots the rule uses, `state[0..slots * len]`
            // (every length is checked above), and reads the status words.
            unsafe { args.launch(elementwise(len)) }.map_err(|e| driver_err(OP, e))
        })?;
        Ok(())
    }
}
