//! Activations on the GPU: launch code for `activation.cu`.

use cudarc::driver::{DevicePtrMut, DeviceRepr, PushKernelArg};

use super::{ActivationKernel, ActivationKind, ActivationParams};
use crate::cuda::launch::{driver_err, elementwise, per_row};
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::{Cuda, CudaBuffer, Result};

/// Element-wise forward.
pub(crate) const FWD: &str = "activation_fwd_f32";
/// Element-wise backward.
pub(crate) const BWD: &str = "activation_bwd_f32";
/// Softmax forward, one block a row.
pub(crate) const SOFTMAX_FWD: &str = "softmax_fwd_f32";
/// Softmax backward, one block a row.
pub(crate) const SOFTMAX_BWD: &str = "softmax_bwd_f32";

/// The activation kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "activation",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("activation.cu")
    ),
    kernels: &[FWD, BWD, SOFTMAX_FWD, SOFTMAX_BWD],
    fmad: false,
};

// SAFETY: `#[repr(C)]` of three `u32` (the kind is a `#[repr(u32)]` enum) and an `f32`,
// matching `struct ActivationParams` in activation.cu; every bit pattern the Rust side
// can hold is valid there.
unsafe impl DeviceRepr for ActivationParams {}

/// Threads a block for a row of `cols` values: a whole number of warps, at most 256.
pub(crate) fn row_threads(cols: usize) -> u32 {
    cols.next_power_of_two().clamp(32, 256) as u32
}

impl Cuda {
    /// `y = f(y)` (or `f(x)` into `y` when `x` is given).
    fn activation_launch(
        &self,
        op: &'static str,
        p: &ActivationParams,
        x: Option<&CudaBuffer>,
        y: &mut CudaBuffer,
    ) -> Result<()> {
        if p.kind == ActivationKind::Linear && x.is_none() || p.is_empty() {
            return Ok(());
        }
        let softmax = p.kind == ActivationKind::Softmax;
        let (name, cfg) = if softmax {
            (
                SOFTMAX_FWD,
                per_row(p.rows as usize, row_threads(p.cols as usize)),
            )
        } else {
            (FWD, elementwise(p.len()))
        };
        let f = self.function(&MODULE, name)?;
        let stream = self.stream();
        let mut args = stream.launch_builder(&f);
        args.arg(p);
        let launched = match x {
            Some(x) => {
                args.arg(&x.data).arg(&mut y.data);
                // SAFETY: the kernel reads `x[0..rows * cols]` and writes the same range
                // of `y`; the caller checked both lengths.
                unsafe { args.launch(cfg) }
            }
            None => {
                let (ptr, _sync) = y.data.device_ptr_mut(stream);
                args.arg(&ptr).arg(&ptr);
                // SAFETY: in place: `x` and `y` are the same `rows * cols` values of `y`
                // (length checked by the caller), which the kernel reads before it
                // writes each; `y` stays borrowed until the launch is queued.
                unsafe { args.launch(cfg) }
            }
        };
        launched.map_err(|e| driver_err(op, e))?;
        Ok(())
    }
}

impl ActivationKernel for Cuda {
    fn activation_fwd(
        &self,
        p: &ActivationParams,
        x: &CudaBuffer,
        y: &mut CudaBuffer,
    ) -> Result<()> {
        check_len("activation_fwd", "x", p.len(), x.len())?;
        check_len("activation_fwd", "y", p.len(), y.len())?;
        self.activation_launch("activation_fwd", p, Some(x), y)
    }

    fn activation_fwd_inplace(&self, p: &ActivationParams, y: &mut CudaBuffer) -> Result<()> {
        check_len("activation_fwd", "y", p.len(), y.len())?;
        self.activation_launch("activation_fwd", p, None, y)
    }

    fn activation_bwd(
        &self,
        p: &ActivationParams,
        x: &CudaBuffer,
        y: &CudaBuffer,
        grad: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "activation_bwd";
        check_len(OP, "x", p.len(), x.len())?;
        check_len(OP, "y", p.len(), y.len())?;
        check_len(OP, "grad", p.len(), grad.len())?;
        if p.kind == ActivationKind::Linear || p.is_empty() {
            return Ok(());
        }
        let launched = if p.kind == ActivationKind::Softmax {
            let f = self.function(&MODULE, SOFTMAX_BWD)?;
            let mut args = self.stream().launch_builder(&f);
            args.arg(p).arg(&y.data).arg(&mut grad.data);
            let cfg = per_row(p.rows as usize, row_threads(p.cols as usize));
            // SAFETY: the kernel reads `y[0..rows * cols]` and updates the same range of
            // `grad`; all three lengths are checked above.
            unsafe { args.launch(cfg) }
        } else {
            let f = self.function(&MODULE, BWD)?;
            let mut args = self.stream().launch_builder(&f);
            args.arg(p).arg(&x.data).arg(&y.data).arg(&mut grad.data);
            // SAFETY: as above, reading `x` too, whose length is checked above.
            unsafe { args.launch(elementwise(p.len())) }
        };
        launched.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }
}
