//! The embedding lookup on the GPU: launch code for `embedding.cu`.
//!
//! An invalid id cannot fail the launch (the host has moved on): the kernel reports
//! it through the status words and `Storage::check_errors` returns it as the CPU's
//! error, with its batch row and position.

use cudarc::driver::{DeviceRepr, PushKernelArg};

use super::{EmbeddingKernel, EmbeddingParams};
use crate::cuda::launch::{driver_err, elementwise};
use crate::cuda::module::KernelSource;
use crate::cuda::report::{Origin, StatusWord};
use crate::error::check_len;
use crate::ops::us;
use crate::{Cuda, CudaBuffer, Result};

/// The gather.
pub(crate) const FWD: &str = "embedding_fwd_f32";
/// The scatter-add.
pub(crate) const BWD: &str = "embedding_bwd_f32";

/// The embedding kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "embedding",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("embedding.cu")
    ),
    kernels: &[FWD, BWD],
    fmad: false,
};

// SAFETY: `#[repr(C)]` of four `u32`, matching `struct EmbeddingParams` in
// embedding.cu.
unsafe impl DeviceRepr for EmbeddingParams {}

fn check(
    op: &'static str,
    p: &EmbeddingParams,
    ids: usize,
    table: usize,
    rows: usize,
) -> Result<usize> {
    let (n, width) = (p.tokens(), us(p.width));
    check_len(op, "ids", n, ids)?;
    check_len(op, "table", us(p.vocabulary) * width, table)?;
    check_len(op, "rows", n * width, rows)?;
    Ok(n * width)
}

impl EmbeddingKernel for Cuda {
    fn embedding_fwd(
        &self,
        p: &EmbeddingParams,
        ids: &CudaBuffer,
        table: &CudaBuffer,
        y: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "embedding_fwd";
        let n = check(OP, p, ids.len(), table.len(), y.len())?;
        if n == 0 {
            return Ok(());
        }
        let f = self.function(&MODULE, FWD)?;
        let origin = Origin {
            op: OP,
            operand: "ids",
            classes: us(p.vocabulary),
            steps: us(p.time),
        };
        self.with_reports(&[(StatusWord::InvalidTarget, origin)], |status| {
            let mut args = self.stream().launch_builder(&f);
            args.arg(p)
                .arg(&ids.data)
                .arg(&table.data)
                .arg(&mut y.data)
                .arg(status);
            // SAFETY: thread `i < n` reads `ids[i / width]` (`batch * time` ids,
            // checked), the table row of a valid id (checked to be below the
            // vocabulary, whose rows the table holds), and writes `y[i]` (checked).
            unsafe { args.launch(elementwise(n)) }.map_err(|e| driver_err(OP, e))?;
            Ok(())
        })
    }

    fn embedding_bwd(
        &self,
        p: &EmbeddingParams,
        ids: &CudaBuffer,
        dy: &CudaBuffer,
        dtable: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "embedding_bwd";
        let n = check(OP, p, ids.len(), dtable.len(), dy.len())?;
        if n == 0 {
            return Ok(());
        }
        let f = self.function(&MODULE, BWD)?;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p)
            .arg(&ids.data)
            .arg(&dy.data)
            .arg(&mut dtable.data);
        // SAFETY: as the forward: `ids`, `dy` and the rows of valid ids in `dtable`
        // lie inside their checked lengths; invalid ids touch nothing.
        unsafe { args.launch(elementwise(n)) }.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }
}
