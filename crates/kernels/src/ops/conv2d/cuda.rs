//! Convolution on the GPU: launch code for `conv2d.cu`, implicit GEMMs on the SGEMM
//! core of `cuda/gemm.cuh`, in the tile and slices of K that a [`Plan`] chooses for
//! each product. The patches are read from the image as the tiles load, so the GPU
//! needs no workspace.

use cudarc::driver::{DeviceRepr, PushKernelArg};

use super::{Conv2dKernel, Conv2dParams};
use crate::cuda::gemm::{Plan, TILES, tile_kernels};
use crate::cuda::launch::driver_err;
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::ops::InputGrad;
use crate::ops::bias::cpu::check_epilogue;
use crate::ops::bias::{BiasKernel, BiasParams};
use crate::ops::us;
use crate::{Cuda, CudaBuffer, Error, Result};

/// Forward with bias and epilogue activation, one kernel a tile.
pub(crate) const FWD: [&str; TILES] = tile_kernels!("conv2d_fwd_f32");
/// Weight gradient, one kernel a tile.
pub(crate) const WEIGHT_BWD: [&str; TILES] = tile_kernels!("conv2d_weight_bwd_f32");
/// Input gradient, one kernel a tile.
pub(crate) const INPUT_BWD: [&str; TILES] = tile_kernels!("conv2d_input_bwd_f32");

/// Every kernel of the module.
const KERNELS: [&str; 3 * TILES] = {
    let mut all = [""; 3 * TILES];
    let mut i = 0;
    while i < TILES {
        all[i] = FWD[i];
        all[TILES + i] = WEIGHT_BWD[i];
        all[2 * TILES + i] = INPUT_BWD[i];
        i += 1;
    }
    all
};

/// The convolution kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "conv2d",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("../../cuda/gemm.cuh"),
        include_str!("conv2d.cu")
    ),
    kernels: &KERNELS,
    fmad: true,
};

// SAFETY: `#[repr(C)]` of fifteen `u32` (the activation a `#[repr(u32)]` enum) and an
// `f32`, matching `struct Conv2dParams` in conv2d.cu.
unsafe impl DeviceRepr for Conv2dParams {}

/// Refuses geometries whose indices the kernels' 32-bit arithmetic cannot hold.
fn check_extent(op: &'static str, p: &Conv2dParams) -> Result<()> {
    let biggest = p.input_len().max(p.output_len()).max(p.weight_len());
    if biggest > u32::MAX as usize {
        return Err(Error::InvalidParams {
            op,
            detail: format!("{biggest} values exceed the GPU kernels' 32-bit indices"),
        });
    }
    Ok(())
}

impl Conv2dKernel for Cuda {
    fn conv2d_workspace_len(&self, _p: &Conv2dParams) -> usize {
        0
    }

    fn conv2d_fwd(
        &self,
        p: &Conv2dParams,
        x: &CudaBuffer,
        w: &CudaBuffer,
        bias: &CudaBuffer,
        y: &mut CudaBuffer,
        _ws: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "conv2d_fwd";
        check_len(OP, "x", p.input_len(), x.len())?;
        check_len(OP, "w", p.weight_len(), w.len())?;
        check_len(OP, "y", p.output_len(), y.len())?;
        check_len(OP, "bias", us(p.out_c), bias.len())?;
        check_epilogue(OP, p.activation)?;
        check_extent(OP, p)?;
        if p.output_len() == 0 {
            return Ok(());
        }
        // Under a wave of tiles (small batches), the patch in slices that add into a
        // zeroed output, the bias and activation after; else in the store.
        let (rows, cols) = (p.out_pixels(), us(p.out_c));
        let plan = Plan::split_if_short(rows, cols, p.patch_len(), self.multiprocessors());
        plan.zero_if_split(self, y, p.output_len())?;
        let (tile, cfg) = plan.grid(OP, rows, cols)?;
        let f = self.function(&MODULE, tile.kernel(&FWD))?;
        // The patch's length is at most the weight's, which `check_extent` bounds.
        let chunk = plan.chunk as u32;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p)
            .arg(&x.data)
            .arg(&w.data)
            .arg(&bias.data)
            .arg(&mut y.data)
            .arg(&chunk);
        // SAFETY: the kernel reads `x` (`input_len`), `w` (`weight_len`) and `bias`
        // (`out_c`) and writes (or adds to) `y[0..output_len]`; every length is checked
        // above.
        unsafe { args.launch(cfg) }.map_err(|e| driver_err(OP, e))?;
        if plan.splits > 1 {
            // `rows` fits in 32 bits: `check_extent` bounds the output, which is longer.
            let epilogue = BiasParams {
                activation: p.activation,
                negative_slope: p.negative_slope,
                ..BiasParams::new(rows as u32, p.out_c)
            };
            self.bias_activation(&epilogue, bias, y)?;
        }
        Ok(())
    }

    fn conv2d_bwd(
        &self,
        p: &Conv2dParams,
        x: &CudaBuffer,
        w: &CudaBuffer,
        dy: &CudaBuffer,
        dw: &mut CudaBuffer,
        dbias: &mut CudaBuffer,
        dx: Option<InputGrad<'_, CudaBuffer>>,
        _ws: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "conv2d_bwd";
        check_len(OP, "x", p.input_len(), x.len())?;
        check_len(OP, "w", p.weight_len(), w.len())?;
        check_len(OP, "y", p.output_len(), dy.len())?;
        check_len(OP, "dw", p.weight_len(), dw.len())?;
        check_len(OP, "dbias", us(p.out_c), dbias.len())?;
        if let Some(dx) = &dx {
            check_len(OP, "dx", p.input_len(), dx.buffer.len())?;
        }
        check_extent(OP, p)?;
        let rows = p.out_pixels();
        if rows > 0 && p.weight_len() > 0 {
            let (patch, out_c) = (p.patch_len(), us(p.out_c));
            let plan = Plan::split(patch, out_c, rows, self.multiprocessors());
            let (tile, cfg) = plan.grid(OP, patch, out_c)?;
            let f = self.function(&MODULE, tile.kernel(&WEIGHT_BWD))?;
            let chunk = plan.chunk as u32;
            let mut args = self.stream().launch_builder(&f);
            args.arg(p)
                .arg(&x.data)
                .arg(&dy.data)
                .arg(&mut dw.data)
                .arg(&chunk);
            // SAFETY: the kernel reads `x` (`input_len`) and `dy` (`output_len`) and
            // adds to `dw[0..weight_len]`; every length is checked above.
            unsafe { args.launch(cfg) }.map_err(|e| driver_err(OP, e))?;
        }
        if let Some(InputGrad {
            buffer: dx,
            accumulate,
        }) = dx
            && p.input_len() > 0
        {
            let (image_pixels, in_c) = (p.input_len() / us(p.in_c).max(1), us(p.in_c));
            // Under a wave of tiles (small batches): split the sum over taps x filters,
            // the slices adding into the gradient, zeroed first unless it accumulates.
            let inner = us(p.kernel_h) * us(p.kernel_w) * us(p.out_c);
            let plan = Plan::split_if_short(image_pixels, in_c, inner, self.multiprocessors());
            if !accumulate {
                plan.zero_if_split(self, dx, p.input_len())?;
            }
            let (tile, cfg) = plan.grid(OP, image_pixels, in_c)?;
            let f = self.function(&MODULE, tile.kernel(&INPUT_BWD))?;
            // `inner` is at most the weight's length, which `check_extent` bounds.
            let chunk = plan.chunk as u32;
            let mut args = self.stream().launch_builder(&f);
            args.arg(p)
                .arg(&dy.data)
                .arg(&w.data)
                .arg(&mut dx.data)
                .arg(&accumulate)
                .arg(&chunk);
            // SAFETY: the kernel reads `dy` (`output_len`) and `w` (`weight_len`) and
            // writes (or adds to) `dx[0..input_len]`; every length is checked above.
            unsafe { args.launch(cfg) }.map_err(|e| driver_err(OP, e))?;
        }
        // `rows` fits in 32 bits: `check_extent` bounds the output, which is longer.
        let bias = BiasParams::new(rows as u32, p.out_c);
        self.column_sums(OP, &bias, dy, dbias)
    }
}
