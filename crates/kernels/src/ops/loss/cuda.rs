//! Losses on the GPU: launch code for `loss.cu`.
//!
//! The kernel reports a non-finite output or an invalid label through status words,
//! which the launch reads back (one small synchronous copy a call) to return the same
//! errors as the CPU backend.

use cudarc::driver::{DeviceRepr, PushKernelArg};

use super::{LossKernel, LossParams};
use crate::cuda::launch::{driver_err, elementwise};
use crate::cuda::module::KernelSource;
use crate::cuda::report::{Origin, StatusWord};
use crate::error::check_len;
use crate::ops::us;
use crate::{Cuda, CudaBuffer, Error, Result};

/// Values and gradients, one thread a sample.
pub(crate) const FWD: &str = "loss_fwd_f32";

/// The loss kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "loss",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("loss.cu")
    ),
    kernels: &[FWD],
    fmad: false,
};

// SAFETY: `#[repr(C)]` of five `u32` (two of them `#[repr(u32)]` enums) and four
// `f32`, matching `struct LossParams` in loss.cu.
unsafe impl DeviceRepr for LossParams {}

impl LossKernel for Cuda {
    fn loss(
        &self,
        p: &LossParams,
        output: &CudaBuffer,
        target: &CudaBuffer,
        weights: Option<&CudaBuffer>,
        per_sample: &mut CudaBuffer,
        grad: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "loss";
        let (batch, features) = (us(p.batch), us(p.features));
        let n = batch * features;
        check_len(OP, "output", n, output.len())?;
        check_len(OP, "target", p.target_len(), target.len())?;
        check_len(OP, "per_sample", batch, per_sample.len())?;
        check_len(OP, "grad", n, grad.len())?;
        if features == 0 {
            return Err(Error::InvalidParams {
                op: OP,
                detail: "a sample needs at least one value".into(),
            });
        }
        let weights = match (p.weighted, weights) {
            // Never read: the kernel only needs a valid pointer.
            (0, _) => output,
            (_, Some(w)) => {
                check_len(OP, "weights", batch, w.len())?;
                w
            }
            (_, None) => {
                return Err(Error::InvalidParams {
                    op: OP,
                    detail: "weighted is set but no weight buffer was given".into(),
                });
            }
        };
        if batch == 0 {
            return Ok(());
        }
        if n >= u32::MAX as usize {
            return Err(Error::InvalidParams {
                op: OP,
                detail: format!("{n} output values exceed what the kernel's reports index"),
            });
        }
        let f = self.function(&MODULE, FWD)?;
        let origins = [
            (
                StatusWord::NonFiniteOutput,
                Origin {
                    op: OP,
                    operand: "output",
                    classes: features,
                    steps: 0,
                },
            ),
            (
                StatusWord::InvalidTarget,
                Origin {
                    op: OP,
                    operand: "target",
                    classes: features,
                    steps: 0,
                },
            ),
        ];
        self.with_reports(&origins, |status| {
            let mut args = self.stream().launch_builder(&f);
            args.arg(p)
                .arg(&output.data)
                .arg(&target.data)
                .arg(&weights.data)
                .arg(&mut per_sample.data)
                .arg(&mut grad.data)
                .arg(status);
            // SAFETY: thread `i < batch` reads row `i` of `output` and `grad`
            // (`batch * features` values), its target (`target_len`), `weights[i]` when
            // weighted, writes `per_sample[i]`, and reports through the status words;
            // every length is checked above.
            unsafe { args.launch(elementwise(batch)) }.map_err(|e| driver_err(OP, e))?;
            Ok(())
        })?;
        Ok(())
    }
}
