//! The sum on the GPU: launch code for `add.cu`.

use cudarc::driver::{DevicePtrMut, DeviceRepr, PushKernelArg};

use super::{AddKernel, AddParams};
use crate::cuda::launch::{driver_err, elementwise};
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::ops::us;
use crate::{Cuda, CudaBuffer, Result};

/// The sum and its activation, out of place or in place.
pub(crate) const FWD: &str = "add_fwd_f32";

/// The sum's kernel.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "add",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("add.cu")
    ),
    kernels: &[FWD],
    fmad: false,
};

// SAFETY: `#[repr(C)]` of two `u32` (the activation is a `#[repr(u32)]` enum) and an
// `f32`, matching `struct AddParams` in add.cu.
unsafe impl DeviceRepr for AddParams {}

impl Cuda {
    /// `y = act(a + b)`, or `y = act(a + y)` without `b`; lengths checked by the caller.
    fn add_launch(
        &self,
        op: &'static str,
        p: &AddParams,
        a: &CudaBuffer,
        b: Option<&CudaBuffer>,
        y: &mut CudaBuffer,
    ) -> Result<()> {
        let len = us(p.len);
        if len == 0 {
            return Ok(());
        }
        let f = self.function(&MODULE, FWD)?;
        let stream = self.stream();
        let mut args = stream.launch_builder(&f);
        args.arg(p).arg(&a.data);
        let launched = match b {
            Some(b) => {
                args.arg(&b.data).arg(&mut y.data);
                // SAFETY: the kernel reads `a[0..len]` and `b[0..len]` and writes
                // `y[0..len]`; the caller checked all three lengths.
                unsafe { args.launch(elementwise(len)) }
            }
            None => {
                let (ptr, _sync) = y.data.device_ptr_mut(stream);
                args.arg(&ptr).arg(&ptr);
                // SAFETY: in place: `b` and `y` are the same `len` values of `y`
                // (length checked by the caller), each read by its thread before that
                // thread writes it; `y` stays borrowed until the launch is queued.
                unsafe { args.launch(elementwise(len)) }
            }
        };
        launched.map_err(|e| driver_err(op, e))?;
        Ok(())
    }
}

impl AddKernel for Cuda {
    fn add_fwd(
        &self,
        p: &AddParams,
        a: &CudaBuffer,
        b: &CudaBuffer,
        y: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "add_fwd";
        let len = us(p.len);
        p.check(OP)?;
        check_len(OP, "a", len, a.len())?;
        check_len(OP, "b", len, b.len())?;
        check_len(OP, "y", len, y.len())?;
        self.add_launch(OP, p, a, Some(b), y)
    }

    fn add_fwd_inplace(&self, p: &AddParams, a: &CudaBuffer, y: &mut CudaBuffer) -> Result<()> {
        const OP: &str = "add_fwd_inplace";
        let len = us(p.len);
        p.check(OP)?;
        check_len(OP, "a", len, a.len())?;
        check_len(OP, "y", len, y.len())?;
        self.add_launch(OP, p, a, None, y)
    }
}
