//! The moving average on the GPU: launch code for `ema.cu`.

use cudarc::driver::{DevicePtr, DevicePtrMut, DeviceRepr, PushKernelArg};

use super::{EmaKernel, EmaParams, EmaStep};
use crate::cuda::launch::{driver_err, in_groups};
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::ops::us;
use crate::{Cuda, CudaBuffer, Result};

/// The averages of up to [`GROUP`] tensors in one launch (one tensor is a group of
/// one).
pub(crate) const GROUP_FWD: &str = "ema_group_fwd_f32";

/// Tensors one group launch averages (`EMA_GROUP` in ema.cu).
const GROUP: usize = 8;

/// `struct EmaGroup` in ema.cu: the tensors' parameters, then their device addresses.
#[repr(C)]
#[derive(Clone, Copy)]
struct EmaGroup {
    count: u32,
    params: [EmaParams; GROUP],
    average: [u64; GROUP],
    value: [u64; GROUP],
}

// SAFETY: `#[repr(C)]` of a `u32`, eight `EmaParams` (a `u32` and an `f32` each) and
// two arrays of eight device addresses, laid out as `struct EmaGroup` in ema.cu (the
// addresses 8-byte aligned after padding in both).
unsafe impl DeviceRepr for EmaGroup {}

// SAFETY: `#[repr(C)]` of a `u32` and an `f32`, matching `struct EmaParams` in ema.cu.
unsafe impl DeviceRepr for EmaParams {}

/// The moving average's kernel.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "ema",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("ema.cu")
    ),
    kernels: &[GROUP_FWD],
    fmad: false,
};

impl EmaKernel for Cuda {
    fn ema_update_many<'a>(&self, steps: impl IntoIterator<Item = EmaStep<'a, Self>>) -> Result<()>
    where
        Self: 'a,
    {
        const OP: &str = "ema_update";
        let stream = self.stream();
        let fresh = || EmaGroup {
            count: 0,
            params: [EmaParams {
                len: 0,
                weight: 0.0,
            }; GROUP],
            average: [0; GROUP],
            value: [0; GROUP],
        };
        let add = |group: &mut EmaGroup, i: usize, s: EmaStep<'a, Self>| {
            let len = us(s.params.len);
            check_len(OP, "average", len, s.average.len())?;
            check_len(OP, "value", len, s.value.len())?;
            if len > 0 {
                group.params[i] = s.params;
                group.average[i] = s.average.data.device_ptr_mut(stream).0;
                group.value[i] = s.value.data.device_ptr(stream).0;
            }
            Ok(len)
        };
        in_groups(steps, GROUP, fresh, add, |group, count, cfg| {
            let group = EmaGroup { count, ..*group };
            let f = self.function(&MODULE, GROUP_FWD)?;
            self.with_reports(&[], |status| {
                let mut args = stream.launch_builder(&f);
                args.arg(&group).arg(&*status);
                // SAFETY: block row `t < count` updates tensor `t`: `average[0..len]`
                // from `value[0..len]`, both lengths checked above, at addresses of
                // buffers borrowed for this call (the launch is ordered before any
                // later free on the stream); it reads the status words.
                unsafe { args.launch(cfg) }.map_err(|e| driver_err(OP, e))?;
                Ok(())
            })
        })
    }

    fn ema_update(&self, p: &EmaParams, average: &mut CudaBuffer, value: &CudaBuffer) -> Result<()> {
        self.ema_update_many([EmaStep {
            params: *p,
            average,
            value,
        }])
    }
}
