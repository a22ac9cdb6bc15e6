//! Pooling on the GPU: launch code for `pool2d.cu`.

use cudarc::driver::{DeviceRepr, PushKernelArg};

use super::{Pool2dKernel, Pool2dParams, PoolForward, PoolKind};
use crate::cuda::launch::{driver_err, elementwise};
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::{Cuda, CudaBuffer, Result};

/// Forward, one thread an output value.
pub(crate) const FWD: &str = "pool2d_fwd_f32";
/// Backward, one thread an input value.
pub(crate) const BWD: &str = "pool2d_bwd_f32";
/// Max pooling's backward where the windows tile the input, one thread an output value.
pub(crate) const BWD_TILED: &str = "pool2d_tiled_bwd_f32";

/// The pooling kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "pool2d",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("pool2d.cu")
    ),
    kernels: &[FWD, BWD, BWD_TILED],
    fmad: false,
};

// SAFETY: `#[repr(C)]` of thirteen `u32` (the kind a `#[repr(u32)]` enum), matching
// `struct Pool2dParams` in pool2d.cu.
unsafe impl DeviceRepr for Pool2dParams {}

impl Pool2dKernel for Cuda {
    /// None: the backward kernels find each window's maximum again from the input,
    /// one thread an output value where the windows tile the input, else an input cell.
    fn pool2d_reserve_len(&self, _p: &Pool2dParams) -> usize {
        0
    }

    fn pool2d_fwd(
        &self,
        p: &Pool2dParams,
        x: &CudaBuffer,
        y: &mut CudaBuffer,
        _reserve: Option<&mut CudaBuffer>,
    ) -> Result<()> {
        check_len("pool2d_fwd", "x", p.input_len(), x.len())?;
        check_len("pool2d_fwd", "y", p.output_len(), y.len())?;
        if p.output_len() == 0 {
            return Ok(());
        }
        let f = self.function(&MODULE, FWD)?;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p).arg(&x.data).arg(&mut y.data);
        // SAFETY: the kernel reads `x[0..input_len]` and writes `y[0..output_len]`;
        // both lengths are checked above.
        unsafe { args.launch(elementwise(p.output_len())) }
            .map_err(|e| driver_err("pool2d_fwd", e))?;
        Ok(())
    }

    fn pool2d_bwd(
        &self,
        p: &Pool2dParams,
        fwd: PoolForward<'_, CudaBuffer>,
        dy: &CudaBuffer,
        dx: &mut CudaBuffer,
    ) -> Result<()> {
        self.pool_backward(p, fwd, dy, dx, false)
    }

    fn pool2d_bwd_through_relu(
        &self,
        p: &Pool2dParams,
        fwd: PoolForward<'_, CudaBuffer>,
        dy: &CudaBuffer,
        dx: &mut CudaBuffer,
    ) -> Result<()> {
        p.check_through_relu()?;
        self.pool_backward(p, fwd, dy, dx, true)
    }
}

impl Cuda {
    /// The backward pass, through the ReLU below when `relu`: one thread an output
    /// value where max pooling's windows tile the input, else one an input value.
    fn pool_backward(
        &self,
        p: &Pool2dParams,
        fwd: PoolForward<'_, CudaBuffer>,
        dy: &CudaBuffer,
        dx: &mut CudaBuffer,
        relu: bool,
    ) -> Result<()> {
        const OP: &str = "pool2d_bwd";
        let (x, y) = (fwd.x, fwd.y);
        check_len(OP, "x", p.input_len(), x.len())?;
        check_len(OP, "y", p.output_len(), y.len())?;
        check_len(OP, "dy", p.output_len(), dy.len())?;
        check_len(OP, "dx", p.input_len(), dx.len())?;
        if p.input_len() == 0 {
            return Ok(());
        }
        let tiled = p.kind == PoolKind::Max && p.windows_tile() && p.output_len() > 0;
        let (kernel, threads) = if tiled {
            (BWD_TILED, p.output_len())
        } else {
            (BWD, p.input_len())
        };
        let f = self.function(&MODULE, kernel)?;
        let relu = u32::from(relu);
        let mut args = self.stream().launch_builder(&f);
        args.arg(p)
            .arg(&x.data)
            .arg(&y.data)
            .arg(&dy.data)
            .arg(&mut dx.data)
            .arg(&relu);
        // SAFETY: the kernel reads `x` and writes `dx` over `input_len` values, and
        // reads `y` and `dy` over `output_len`; all four lengths are checked above.
        unsafe { args.launch(elementwise(threads)) }.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }
}
