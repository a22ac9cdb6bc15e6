//! Fused attention on the GPU: launch code for `attention.cu`.

use cudarc::driver::{DeviceRepr, PushKernelArg};

use super::{AttentionKernel, AttentionParams};
use crate::cuda::launch::{driver_err, elementwise};
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::{Cuda, CudaBuffer, Error, Result};

/// The output and log-sum-exp, one thread a query row.
pub(crate) const FWD: &str = "attention_fwd_f32";
/// `delta = rowsum(do * o)`.
pub(crate) const DELTA_BWD: &str = "attention_delta_bwd_f32";
/// The keys' and values' gradients, one thread a key row.
pub(crate) const BWD: &str = "attention_bwd_f32";
/// The queries' gradient, one thread a query row.
pub(crate) const DQ_BWD: &str = "attention_dq_bwd_f32";

/// The largest head dimension the kernels take (`KILN_ATTENTION_MAX_DIM`).
const MAX_DIM: u32 = 128;

/// The attention kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "attention",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("attention.cu")
    ),
    kernels: &[FWD, DELTA_BWD, BWD, DQ_BWD],
    fmad: false,
};

// SAFETY: `#[repr(C)]` of five `u32`, matching `struct AttentionParams` in
// attention.cu.
unsafe impl DeviceRepr for AttentionParams {}

fn check_dim(op: &'static str, p: &AttentionParams) -> Result<()> {
    if p.head_dim > MAX_DIM {
        return Err(Error::InvalidParams {
            op,
            detail: format!("head dimension {} is above the GPU kernels' {MAX_DIM}", p.head_dim),
        });
    }
    Ok(())
}

impl AttentionKernel for Cuda {
    fn attention_fwd(
        &self,
        p: &AttentionParams,
        qkv: &CudaBuffer,
        o: &mut CudaBuffer,
        lse: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "attention_fwd";
        check_dim(OP, p)?;
        check_len(OP, "qkv", p.qkv_len(), qkv.len())?;
        check_len(OP, "o", p.out_len(), o.len())?;
        check_len(OP, "lse", p.stats_len(), lse.len())?;
        if p.stats_len() == 0 {
            return Ok(());
        }
        let f = self.function(&MODULE, FWD)?;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p).arg(&qkv.data).arg(&mut o.data).arg(&mut lse.data);
        // SAFETY: thread `i < batch * heads * time` reads its sequence's rows of `qkv`
        // and writes its row's head columns of `o` and `lse[i]`, inside the checked
        // lengths; the head dimension fits the kernel's arrays (checked).
        unsafe { args.launch(elementwise(p.stats_len())) }.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }

    fn attention_bwd(
        &self,
        p: &AttentionParams,
        qkv: &CudaBuffer,
        o: &CudaBuffer,
        lse: &CudaBuffer,
        d_o: &CudaBuffer,
        delta: &mut CudaBuffer,
        dqkv: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "attention_bwd";
        check_dim(OP, p)?;
        check_len(OP, "qkv", p.qkv_len(), qkv.len())?;
        check_len(OP, "o", p.out_len(), o.len())?;
        check_len(OP, "d_o", p.out_len(), d_o.len())?;
        check_len(OP, "lse", p.stats_len(), lse.len())?;
        check_len(OP, "delta", p.stats_len(), delta.len())?;
        check_len(OP, "dqkv", p.qkv_len(), dqkv.len())?;
        let n = p.stats_len();
        if n == 0 {
            return Ok(());
        }
        let f = self.function(&MODULE, DELTA_BWD)?;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p).arg(&o.data).arg(&d_o.data).arg(&mut delta.data);
        // SAFETY: thread `i` reads its row's head columns of `o` and `d_o` and writes
        // `delta[i]`, inside the checked lengths.
        unsafe { args.launch(elementwise(n)) }.map_err(|e| driver_err(OP, e))?;
        for name in [BWD, DQ_BWD] {
            let f = self.function(&MODULE, name)?;
            let mut args = self.stream().launch_builder(&f);
            args.arg(p)
                .arg(&qkv.data)
                .arg(&lse.data)
                .arg(&d_o.data)
                .arg(&delta.data)
                .arg(&mut dqkv.data);
            // SAFETY: thread `i` reads its sequence's rows of `qkv` and `d_o` and
            // their `lse` and `delta`, and writes its own row's key and value (or
            // query) columns of its head in `dqkv`: distinct threads, distinct values.
            unsafe { args.launch(elementwise(n)) }.map_err(|e| driver_err(OP, e))?;
        }
        Ok(())
    }
}
