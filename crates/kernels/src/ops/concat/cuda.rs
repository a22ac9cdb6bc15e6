//! Concatenation on the GPU: launch code for `concat.cu`.

use cudarc::driver::{DeviceRepr, PushKernelArg};

use super::{ConcatKernel, ConcatParams};
use crate::cuda::launch::{driver_err, elementwise};
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::ops::InputGrad;
use crate::{Cuda, CudaBuffer, Result};

/// An input into its slice of the output.
pub(crate) const FWD: &str = "concat_fwd_f32";
/// The output gradient's slice back to the input.
pub(crate) const BWD: &str = "concat_bwd_f32";

/// The concatenation kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "concat",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("concat.cu")
    ),
    kernels: &[FWD, BWD],
    fmad: false,
};

// SAFETY: `#[repr(C)]` of four `u32`, matching `struct ConcatParams` in concat.cu.
unsafe impl DeviceRepr for ConcatParams {}

impl ConcatKernel for Cuda {
    fn concat_fwd(&self, p: &ConcatParams, x: &CudaBuffer, y: &mut CudaBuffer) -> Result<()> {
        const OP: &str = "concat_fwd";
        p.check(OP)?;
        check_len(OP, "x", p.input_len(), x.len())?;
        check_len(OP, "y", p.output_len(), y.len())?;
        if p.input_len() == 0 {
            return Ok(());
        }
        let f = self.function(&MODULE, FWD)?;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p).arg(&x.data).arg(&mut y.data);
        // SAFETY: the kernel reads `x[0..rows * width]` and writes inside
        // `y[0..rows * total]` (`offset + width <= total` is checked above), both lengths
        // checked above.
        unsafe { args.launch(elementwise(p.input_len())) }.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }

    fn concat_bwd(
        &self,
        p: &ConcatParams,
        dy: &CudaBuffer,
        dx: InputGrad<'_, CudaBuffer>,
    ) -> Result<()> {
        const OP: &str = "concat_bwd";
        p.check(OP)?;
        check_len(OP, "dy", p.output_len(), dy.len())?;
        check_len(OP, "dx", p.input_len(), dx.buffer.len())?;
        if p.input_len() == 0 {
            return Ok(());
        }
        let f = self.function(&MODULE, BWD)?;
        let accumulate = u32::from(dx.accumulate);
        let mut args = self.stream().launch_builder(&f);
        args.arg(p)
            .arg(&dy.data)
            .arg(&mut dx.buffer.data)
            .arg(&accumulate);
        // SAFETY: the kernel reads inside `dy[0..rows * total]` (`offset + width <=
        // total` is checked above) and updates `dx[0..rows * width]`, both lengths
        // checked above.
        unsafe { args.launch(elementwise(p.input_len())) }.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }
}
