//! Layer normalisation on the GPU: launch code for `layer_norm.cu`.

use cudarc::driver::{DeviceRepr, PushKernelArg};

use super::{LayerNormKernel, LayerNormParams};
use crate::cuda::launch::{driver_err, elementwise, per_row};
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::ops::activation::cuda::row_threads;
use crate::ops::us;
use crate::{Cuda, CudaBuffer, Result};

/// Normalisation, one block a row.
pub(crate) const FWD: &str = "layer_norm_fwd_f32";
/// The input's gradient, one block a row.
pub(crate) const BWD: &str = "layer_norm_bwd_f32";
/// The scale's and shift's gradients, one thread a column.
pub(crate) const PARAMS_BWD: &str = "layer_norm_params_bwd_f32";

/// The layer normalisation kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "layer_norm",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("layer_norm.cu")
    ),
    kernels: &[FWD, BWD, PARAMS_BWD],
    fmad: false,
};

// SAFETY: `#[repr(C)]` of two `u32`, an `f32` and a `u32`, matching `struct
// LayerNormParams` in layer_norm.cu.
unsafe impl DeviceRepr for LayerNormParams {}

fn check(op: &'static str, p: &LayerNormParams, x: usize, gamma: usize, stats: usize) -> Result<()> {
    check_len(op, "x", p.len(), x)?;
    check_len(op, "gamma", us(p.cols), gamma)?;
    check_len(op, "stats", 2 * us(p.rows), stats)
}

impl LayerNormKernel for Cuda {
    fn layer_norm_fwd(
        &self,
        p: &LayerNormParams,
        x: &CudaBuffer,
        gamma: &CudaBuffer,
        beta: &CudaBuffer,
        y: &mut CudaBuffer,
        stats: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "layer_norm_fwd";
        check(OP, p, x.len(), gamma.len(), stats.len())?;
        check_len(OP, "beta", us(p.cols), beta.len())?;
        check_len(OP, "y", p.len(), y.len())?;
        if p.is_empty() {
            return Ok(());
        }
        let f = self.function(&MODULE, FWD)?;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p)
            .arg(&x.data)
            .arg(&gamma.data)
            .arg(&beta.data)
            .arg(&mut y.data)
            .arg(&mut stats.data);
        let cfg = per_row(us(p.rows), row_threads(us(p.cols)));
        // SAFETY: block rows read `x` and write `y` within `rows * cols` values, and
        // `stats` within `2 * rows`; `gamma` and `beta` hold `cols` (all checked).
        unsafe { args.launch(cfg) }.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }

    fn layer_norm_bwd(
        &self,
        p: &LayerNormParams,
        x: &CudaBuffer,
        gamma: &CudaBuffer,
        stats: &CudaBuffer,
        dy: &CudaBuffer,
        dx: Option<&mut CudaBuffer>,
        dgamma: &mut CudaBuffer,
        dbeta: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "layer_norm_bwd";
        check(OP, p, x.len(), gamma.len(), stats.len())?;
        check_len(OP, "dy", p.len(), dy.len())?;
        check_len(OP, "dgamma", us(p.cols), dgamma.len())?;
        check_len(OP, "dbeta", us(p.cols), dbeta.len())?;
        if p.is_empty() {
            return Ok(());
        }
        if let Some(dx) = dx {
            check_len(OP, "dx", p.len(), dx.len())?;
            let f = self.function(&MODULE, BWD)?;
            let mut args = self.stream().launch_builder(&f);
            args.arg(p)
                .arg(&x.data)
                .arg(&gamma.data)
                .arg(&stats.data)
                .arg(&dy.data)
                .arg(&mut dx.data);
            let cfg = per_row(us(p.rows), row_threads(us(p.cols)));
            // SAFETY: as the forward: every access lies within the checked lengths.
            unsafe { args.launch(cfg) }.map_err(|e| driver_err(OP, e))?;
        }
        let f = self.function(&MODULE, PARAMS_BWD)?;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p)
            .arg(&x.data)
            .arg(&stats.data)
            .arg(&dy.data)
            .arg(&mut dgamma.data)
            .arg(&mut dbeta.data);
        // SAFETY: thread `c < cols` reads column `c` of `x` and `dy` (`rows * cols`
        // values), `stats` (`2 * rows`) and updates `dgamma[c]` and `dbeta[c]`.
        unsafe { args.launch(elementwise(us(p.cols))) }.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }
}
