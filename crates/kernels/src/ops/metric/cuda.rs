//! Metric accumulation on the GPU: launch code for `metric.cu`.

use cudarc::driver::{DeviceRepr, PushKernelArg};

use super::{MetricKernel, MetricKind, MetricParams};
use crate::cuda::launch::{BLOCK, driver_err, elementwise, per_row};
use crate::cuda::module::KernelSource;
use crate::cuda::report::{Origin, StatusWord};
use crate::error::check_len;
use crate::ops::us;
use crate::{Cuda, CudaBuffer, Result};

/// Confusion matrix, top-k hits and count.
pub(crate) const CONFUSION: &str = "confusion_fwd_f32";
/// Regression sums.
pub(crate) const REGRESSION: &str = "regression_fwd_f32";

/// The metric kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "metric",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("metric.cu")
    ),
    kernels: &[CONFUSION, REGRESSION],
    fmad: false,
};

// SAFETY: `#[repr(C)]` of five `u32` (the kind a `#[repr(u32)]` enum) and an `f32`,
// matching `struct MetricParams` in metric.cu.
unsafe impl DeviceRepr for MetricParams {}

impl MetricKernel for Cuda {
    fn metric_accumulate(
        &self,
        p: &MetricParams,
        output: &CudaBuffer,
        target: &CudaBuffer,
        acc: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "metric_accumulate";
        let (batch, features) = (us(p.batch), us(p.features));
        check_len(OP, "output", batch * features, output.len())?;
        check_len(OP, "target", p.target_len(), target.len())?;
        check_len(OP, "acc", p.accumulator_len(), acc.len())?;
        match p.kind {
            MetricKind::Regression => {
                // As the CPU's `zip`: pairs up to the shorter of the two.
                let n = (batch * features).min(p.target_len());
                if n == 0 {
                    return Ok(());
                }
                let f = self.function(&MODULE, REGRESSION)?;
                let n = n as u64;
                let mut args = self.stream().launch_builder(&f);
                args.arg(&n)
                    .arg(&output.data)
                    .arg(&target.data)
                    .arg(&mut acc.data);
                // SAFETY: one block reads `output[0..n]` and `target[0..n]` and updates
                // `acc[0..10]`; all three lengths are checked above.
                unsafe { args.launch(per_row(1, BLOCK)) }.map_err(|e| driver_err(OP, e))?;
                Ok(())
            }
            MetricKind::Classification => {
                if batch == 0 || features == 0 {
                    return Ok(());
                }
                let f = self.function(&MODULE, CONFUSION)?;
                let origin = Origin {
                    op: OP,
                    operand: "target",
                    classes: features,
                    steps: 0,
                };
                self.with_reports(&[(StatusWord::InvalidTarget, origin)], |status| {
                    let mut args = self.stream().launch_builder(&f);
                    args.arg(p)
                        .arg(&output.data)
                        .arg(&target.data)
                        .arg(&mut acc.data)
                        .arg(status);
                    // SAFETY: thread `i < batch` reads row `i` of `output`, its target
                    // (one label or one row), and adds to `acc` within
                    // `accumulator_len`; every length is checked above.
                    unsafe { args.launch(elementwise(batch)) }.map_err(|e| driver_err(OP, e))?;
                    Ok(())
                })?;
                Ok(())
            }
        }
    }
}
