//! Optimizer updates on the GPU: launch code for `optimizer.cu`.

use cudarc::driver::{DevicePtr, DevicePtrMut, DeviceRepr, PushKernelArg};

use super::{OptimizerKernel, OptimizerKind, OptimizerParams, OptimizerStep};
use crate::cuda::launch::{driver_err, in_groups};
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::ops::us;
use crate::{Cuda, CudaBuffer, Result};

/// The updates of up to [`GROUP`] tensors in one launch (one tensor is a group of
/// one).
pub(crate) const GROUP_FWD: &str = "optimizer_group_fwd_f32";

/// Tensors one group launch updates (`OPTIMIZER_GROUP` in optimizer.cu).
const GROUP: usize = 8;

/// `struct OptimizerGroup` in optimizer.cu: the tensors' parameters, then their
/// device addresses.
#[repr(C)]
#[derive(Clone, Copy)]
struct OptimizerGroup {
    count: u32,
    params: [OptimizerParams; GROUP],
    param: [u64; GROUP],
    grad: [u64; GROUP],
    state: [u64; GROUP],
}

// SAFETY: `#[repr(C)]` of a `u32`, eight `OptimizerParams` (4-byte fields) and three
// arrays of eight device addresses, laid out as `struct OptimizerGroup` in
// optimizer.cu (the addresses 8-byte aligned after padding in both).
unsafe impl DeviceRepr for OptimizerGroup {}

/// The optimizer kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "optimizer",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("optimizer.cu")
    ),
    kernels: &[GROUP_FWD],
    fmad: false,
};

// SAFETY: `#[repr(C)]` of three `u32` (the kind a `#[repr(u32)]` enum) and fourteen
// `f32`, matching `struct OptimizerParams` in optimizer.cu.
unsafe impl DeviceRepr for OptimizerParams {}

impl OptimizerKernel for Cuda {
    fn optimizer_step_many<'a>(
        &self,
        steps: impl IntoIterator<Item = OptimizerStep<'a, Self>>,
    ) -> Result<()>
    where
        Self: 'a,
    {
        const OP: &str = "optimizer_step";
        let stream = self.stream();
        let fresh = || OptimizerGroup {
            count: 0,
            params: [OptimizerParams::new(OptimizerKind::Sgd, 0); GROUP],
            param: [0; GROUP],
            grad: [0; GROUP],
            state: [0; GROUP],
        };
        let add = |group: &mut OptimizerGroup, i: usize, s: OptimizerStep<'a, Self>| {
            let len = us(s.params.len);
            check_len(OP, "param", len, s.param.len())?;
            check_len(OP, "grad", len, s.grad.len())?;
            check_len(OP, "state", s.params.slots() * len, s.state.len())?;
            if len > 0 {
                group.params[i] = s.params;
                group.param[i] = s.param.data.device_ptr_mut(stream).0;
                group.grad[i] = s.grad.data.device_ptr(stream).0;
                group.state[i] = s.state.data.device_ptr_mut(stream).0;
            }
            Ok(len)
        };
        in_groups(steps, GROUP, fresh, add, |group, count, cfg| {
            let group = OptimizerGroup { count, ..*group };
            let f = self.function(&MODULE, GROUP_FWD)?;
            self.with_reports(&[], |status| {
                let mut args = stream.launch_builder(&f);
                args.arg(&group).arg(&*status);
                // SAFETY: block row `t < count` updates tensor `t`: `param[0..len]`,
                // `grad[0..len]` and its `slots() * len` state values, every length
                // checked above, at addresses of buffers borrowed for this call (the
                // launch is ordered before any later free on the stream); it reads the
                // status words.
                unsafe { args.launch(cfg) }.map_err(|e| driver_err(OP, e))?;
                Ok(())
            })
        })
    }

    fn optimizer_step(
        &self,
        p: &OptimizerParams,
        param: &mut CudaBuffer,
        grad: &CudaBuffer,
        state: &mut CudaBuffer,
    ) -> Result<()> {
        self.optimizer_step_many([OptimizerStep {
            params: *p,
            param,
            grad,
            state,
        }])
    }
}
