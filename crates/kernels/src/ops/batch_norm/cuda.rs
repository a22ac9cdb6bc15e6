//! Batch normalisation on the GPU: launch code for `batch_norm.cu`. A pass is three
//! launches: the partial sums per band of rows, their totals per channel, the
//! element-wise map (an inference forward sums nothing: two launches).

use cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};

use super::{BatchNormKernel, BatchNormParams};
use crate::cuda::launch::{BLOCK, driver_err, elementwise};
use crate::cuda::module::KernelSource;
use crate::ops::{InputGrad, us};
use crate::{Cuda, CudaBuffer, Error, Result};

/// The forward's partial sums per band of rows.
pub(crate) const PARTIALS_FWD: &str = "batch_norm_partials_fwd_f32";
/// The training forward's statistics per channel and the running update.
pub(crate) const STATS_FWD: &str = "batch_norm_stats_fwd_f32";
/// The inference forward's statistics from the running ones.
pub(crate) const RUNNING_FWD: &str = "batch_norm_running_fwd_f32";
/// The normalisation, affine map and epilogue activation.
pub(crate) const FWD: &str = "batch_norm_fwd_f32";
/// The backward's partial sums per band of rows.
pub(crate) const PARTIALS_BWD: &str = "batch_norm_partials_bwd_f32";
/// The parameter gradients and the input gradient's coefficients per channel.
pub(crate) const GRADS_BWD: &str = "batch_norm_grads_bwd_f32";
/// The input gradient.
pub(crate) const BWD: &str = "batch_norm_bwd_f32";

/// The batch normalisation kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "batch_norm",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("batch_norm.cu")
    ),
    kernels: &[
        PARTIALS_FWD,
        STATS_FWD,
        RUNNING_FWD,
        FWD,
        PARTIALS_BWD,
        GRADS_BWD,
        BWD,
    ],
    fmad: false,
};

// SAFETY: `#[repr(C)]` of two `u32`, two `f32`, a `bool`, a `u32` (the activation is a
// `#[repr(u32)]` enum) and an `f32`, laid out as `struct BatchNormParams` in
// batch_norm.cu.
unsafe impl DeviceRepr for BatchNormParams {}

/// Rows of threads a block of the sums (`BN_ROWS` in batch_norm.cu).
const ROWS: u32 = 8;
/// Rows each thread of the partial sums takes at least.
const ROWS_PER_THREAD: usize = 16;
/// Blocks of the partial sums at most, over all channels.
const SUM_BLOCKS: usize = 2048;

/// Blocks of 32 channels.
fn channel_blocks(p: &BatchNormParams) -> u32 {
    p.channels.div_ceil(32)
}

/// Rows of the batch a row of threads of the sums reads at once
/// (`bn_rows_per_warp` in batch_norm.cu): with fewer than 32 channels, as many whole
/// rows as 32 lanes hold.
fn rows_per_warp(p: &BatchNormParams) -> usize {
    match us(p.channels) {
        c @ 1..32 => 32 / c,
        _ => 1,
    }
}

/// Bands of rows the partial sums are cut into: never fewer for more rows, so that a
/// workspace sized for the largest batch serves every smaller one.
fn bands(p: &BatchNormParams) -> u32 {
    let most = (SUM_BLOCKS / channel_blocks(p).max(1) as usize).max(1);
    let per_band = ROWS as usize * rows_per_warp(p) * ROWS_PER_THREAD;
    us(p.rows).div_ceil(per_band).clamp(1, most) as u32
}

/// Blocks of `ROWS x 32` threads: `bands` of them for each 32 channels.
fn sums_grid(p: &BatchNormParams, bands: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (channel_blocks(p), bands, 1),
        block_dim: (32, ROWS, 1),
        shared_mem_bytes: 0,
    }
}

/// A grid for the element-wise kernels, whose threads must be a multiple of the
/// channels (each stays on one channel): about one thread a value, up to 4,096 blocks.
fn elementwise_grid(op: &'static str, p: &BatchNormParams) -> Result<LaunchConfig> {
    let (c, block) = (us(p.channels), BLOCK as usize);
    let (mut a, mut b) = (c, block);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    let unit = c / a;
    let blocks = p
        .len()
        .div_ceil(block)
        .clamp(1, 4096)
        .next_multiple_of(unit);
    let blocks = u32::try_from(blocks).map_err(|_| Error::InvalidParams {
        op,
        detail: format!("{c} channels need more blocks than a grid holds"),
    })?;
    Ok(LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    })
}

impl Cuda {
    /// `y = act(gamma * xhat + beta)` from the statistics in `saved`; lengths checked
    /// by the caller, the batch not empty.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_normalize(
        &self,
        op: &'static str,
        p: &BatchNormParams,
        x: &CudaBuffer,
        gamma: &CudaBuffer,
        beta: &CudaBuffer,
        saved: &CudaBuffer,
        y: &mut CudaBuffer,
    ) -> Result<()> {
        let f = self.function(&MODULE, FWD)?;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p)
            .arg(&x.data)
            .arg(&gamma.data)
            .arg(&beta.data)
            .arg(&saved.data)
            .arg(&mut y.data);
        let cfg = elementwise_grid(op, p)?;
        // SAFETY: the kernel reads `x[0..len]`, `gamma` and `beta` (`channels` values),
        // `saved` (`2 * channels`) and writes `y[0..len]`, all lengths checked by the
        // caller; each thread's channel is below `channels`.
        unsafe { args.launch(cfg) }.map_err(|e| driver_err(op, e))?;
        Ok(())
    }
}

impl BatchNormKernel for Cuda {
    fn batch_norm_workspace_len(&self, p: &BatchNormParams) -> usize {
        // The coefficients' slot, then two doubles (four floats) a channel and band.
        let c = us(p.channels);
        4 * c + 4 * c * bands(p) as usize
    }

    fn batch_norm_fwd_train(
        &self,
        p: &BatchNormParams,
        x: &CudaBuffer,
        gamma: &CudaBuffer,
        beta: &CudaBuffer,
        running_mean: &mut CudaBuffer,
        running_var: &mut CudaBuffer,
        saved: &mut CudaBuffer,
        y: &mut CudaBuffer,
        ws: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "batch_norm_fwd_train";
        let operands = [x, gamma, beta, &*running_mean, &*running_var, &*saved, &*y];
        p.check_forward(self, OP, true, operands, Some(&*ws))?;
        if p.is_empty() {
            return Ok(());
        }
        let bands = bands(p);
        let stream = self.stream();
        let f = self.function(&MODULE, PARTIALS_FWD)?;
        let mut args = stream.launch_builder(&f);
        args.arg(p).arg(&x.data).arg(&mut ws.data);
        // SAFETY: the kernel reads `x[0..len]` (checked above) and writes band
        // `blockIdx.y < bands` of the partials, inside the workspace sized for `bands`
        // (checked above).
        unsafe { args.launch(sums_grid(p, bands)) }.map_err(|e| driver_err(OP, e))?;
        let f = self.function(&MODULE, STATS_FWD)?;
        let mut args = stream.launch_builder(&f);
        args.arg(p)
            .arg(&bands)
            .arg(&x.data)
            .arg(&mut running_mean.data)
            .arg(&mut running_var.data)
            .arg(&mut saved.data)
            .arg(&mut ws.data);
        // SAFETY: the kernel reads the `bands` partials the launch before wrote and the
        // first row of `x`, and updates `running_mean` and `running_var` (`channels`
        // values each) and `saved` (`2 * channels`), all lengths checked above.
        unsafe { args.launch(sums_grid(p, 1)) }.map_err(|e| driver_err(OP, e))?;
        self.batch_norm_normalize(OP, p, x, gamma, beta, saved, y)
    }

    fn batch_norm_fwd_eval(
        &self,
        p: &BatchNormParams,
        x: &CudaBuffer,
        gamma: &CudaBuffer,
        beta: &CudaBuffer,
        running_mean: &CudaBuffer,
        running_var: &CudaBuffer,
        saved: &mut CudaBuffer,
        y: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "batch_norm_fwd_eval";
        let operands = [x, gamma, beta, running_mean, running_var, &*saved, &*y];
        p.check_forward(self, OP, false, operands, None)?;
        if p.channels == 0 {
            return Ok(());
        }
        let f = self.function(&MODULE, RUNNING_FWD)?;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p)
            .arg(&running_mean.data)
            .arg(&running_var.data)
            .arg(&mut saved.data);
        // SAFETY: the kernel reads `running_mean` and `running_var` (`channels` values
        // each) and writes `saved` (`2 * channels`), lengths checked above.
        unsafe { args.launch(elementwise(us(p.channels))) }.map_err(|e| driver_err(OP, e))?;
        if p.is_empty() {
            return Ok(());
        }
        self.batch_norm_normalize(OP, p, x, gamma, beta, saved, y)
    }

    fn batch_norm_bwd(
        &self,
        p: &BatchNormParams,
        training: bool,
        x: &CudaBuffer,
        dy: &CudaBuffer,
        saved: &CudaBuffer,
        gamma: &CudaBuffer,
        dgamma: &mut CudaBuffer,
        dbeta: &mut CudaBuffer,
        dx: Option<InputGrad<'_, CudaBuffer>>,
        ws: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "batch_norm_bwd";
        let operands = [x, dy, saved, gamma, &*dgamma, &*dbeta];
        let dx_buffer = dx.as_ref().map(|dx| &*dx.buffer);
        p.check_backward(self, training, operands, dx_buffer, ws)?;
        if p.is_empty() {
            return Ok(());
        }
        let bands = bands(p);
        let training = u32::from(training);
        let stream = self.stream();
        let f = self.function(&MODULE, PARTIALS_BWD)?;
        let mut args = stream.launch_builder(&f);
        args.arg(p)
            .arg(&x.data)
            .arg(&dy.data)
            .arg(&saved.data)
            .arg(&mut ws.data);
        // SAFETY: the kernel reads `x` and `dy` (`len` values) and `saved`, and writes
        // band `blockIdx.y < bands` of the partials inside the workspace, all lengths
        // checked above.
        unsafe { args.launch(sums_grid(p, bands)) }.map_err(|e| driver_err(OP, e))?;
        let f = self.function(&MODULE, GRADS_BWD)?;
        let mut args = stream.launch_builder(&f);
        args.arg(p)
            .arg(&training)
            .arg(&bands)
            .arg(&saved.data)
            .arg(&gamma.data)
            .arg(&mut dgamma.data)
            .arg(&mut dbeta.data)
            .arg(&mut ws.data);
        // SAFETY: the kernel reads the `bands` partials, `saved` and `gamma`, updates
        // `dgamma` and `dbeta` (`channels` values) and writes the coefficients into the
        // workspace's first `3 * channels` values, all lengths checked above.
        unsafe { args.launch(sums_grid(p, 1)) }.map_err(|e| driver_err(OP, e))?;
        let Some(dx) = dx else {
            return Ok(());
        };
        let accumulate = u32::from(dx.accumulate);
        let f = self.function(&MODULE, BWD)?;
        let mut args = stream.launch_builder(&f);
        args.arg(p)
            .arg(&training)
            .arg(&accumulate)
            .arg(&x.data)
            .arg(&dy.data)
            .arg(&saved.data)
            .arg(&ws.data)
            .arg(&mut dx.buffer.data);
        let cfg = elementwise_grid(OP, p)?;
        // SAFETY: the kernel reads `x` and `dy` (`len` values), `saved` and the
        // coefficients, and writes or updates `dx[0..len]`, all lengths checked above;
        // each thread's channel is below `channels`.
        unsafe { args.launch(cfg) }.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }
}
