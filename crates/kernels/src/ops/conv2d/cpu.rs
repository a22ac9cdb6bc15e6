//! Convolution on the CPU as matrix products over the whole batch. The patch matrix
//! (im2col) is never built: the product gathers each block of it as it goes (see
//! `cpu::gemm::patches`). The input gradient goes through the patch rows' gradient,
//! a block of images at a time, added back into the images (col2im).

use super::{Conv2dKernel, Conv2dParams, winograd};
use crate::cpu::gemm::{Epilogue, Lhs, MatMut, MatRef, PatchGeometry, Patches, sgemm, sgemm_lhs};
use crate::error::check_len;
use crate::ops::InputGrad;
use crate::ops::bias::cpu::{check_epilogue, column_sums_into};
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Result};

/// The patch matrix of `x` under geometry `p`.
fn patches<'a>(p: &Conv2dParams, x: &'a [f32]) -> Patches<'a> {
    Patches {
        x,
        geometry: PatchGeometry {
            batch: us(p.batch),
            in_h: us(p.in_h),
            in_w: us(p.in_w),
            in_c: us(p.in_c),
            out_h: us(p.out_h),
            out_w: us(p.out_w),
            kernel_h: us(p.kernel_h),
            kernel_w: us(p.kernel_w),
            stride_h: us(p.stride_h),
            stride_w: us(p.stride_w),
            pad_top: us(p.pad_top),
            pad_left: us(p.pad_left),
            dilation_h: us(p.dilation_h),
        },
    }
}

/// Adds one image's patch rows `col` back into its input gradient `image`, zeroed first
/// unless the gradient `accumulate`s onto what it holds.
fn col2im_image(p: &Conv2dParams, col: &[f32], image: &mut [f32], accumulate: bool) {
    let (ih, iw, ic) = (us(p.in_h), us(p.in_w), us(p.in_c));
    let (kh, kw) = (us(p.kernel_h), us(p.kernel_w));
    let (oh, ow) = (us(p.out_h), us(p.out_w));
    let run = kw * ic;
    let patch = kh * run;
    if !accumulate {
        image.fill(0.0);
    }
    for oy in 0..oh {
        for ox in 0..ow {
            let src = &col[(oy * ow + ox) * patch..][..patch];
            let x0 = (ox * us(p.stride_w)) as isize - p.pad_left as isize;
            for ky in 0..kh {
                let y = (oy * us(p.stride_h) + ky * us(p.dilation_h)) as isize - p.pad_top as isize;
                if y < 0 || y >= ih as isize {
                    continue;
                }
                let row = &mut image[y as usize * iw * ic..(y as usize + 1) * iw * ic];
                let src = &src[ky * run..(ky + 1) * run];
                if x0 >= 0 && x0 as usize + kw <= iw {
                    let s = x0 as usize * ic;
                    for (d, v) in row[s..s + run].iter_mut().zip(src) {
                        *d += v;
                    }
                } else {
                    for kx in 0..kw {
                        let xx = x0 + kx as isize;
                        if xx < 0 || xx >= iw as isize {
                            continue;
                        }
                        let d = &mut row[xx as usize * ic..(xx as usize + 1) * ic];
                        for (d, v) in d.iter_mut().zip(&src[kx * ic..(kx + 1) * ic]) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

fn check(p: &Conv2dParams, op: &'static str, x: usize, w: usize, y: usize) -> Result<()> {
    check_len(op, "x", p.input_len(), x)?;
    check_len(op, "w", p.weight_len(), w)?;
    check_len(op, "y", p.output_len(), y)
}

/// The gradient of the patch matrix is computed for one block of images at a time, of
/// about this size (the two cores' L2 caches together), so that it stays in cache
/// between being written and being added back into the images: the whole matrix
/// (12 MB for the seed CNN's second layer at batch 64) would make a round trip
/// through memory.
const PATCH_BLOCK_BYTES: usize = 1 << 21;

/// Images per block for geometry `p` (at least one).
fn images_per_block(p: &Conv2dParams) -> usize {
    let per_image = us(p.out_h) * us(p.out_w) * p.patch_len() * std::mem::size_of::<f32>();
    (PATCH_BLOCK_BYTES / per_image.max(1)).clamp(1, us(p.batch).max(1))
}

impl Conv2dKernel for Cpu {
    fn conv2d_workspace_len(&self, p: &Conv2dParams) -> usize {
        // Winograd's transforms, forward and backward, where they apply; else the
        // patch rows of a block of images for the input gradient.
        let threads = self.threads();
        if winograd::applies(p) {
            winograd::workspace_len(p, threads).max(winograd::gradients_workspace_len(p, threads))
        } else {
            images_per_block(p) * us(p.out_h) * us(p.out_w) * p.patch_len()
        }
    }

    fn conv2d_fwd(
        &self,
        p: &Conv2dParams,
        x: &CpuBuffer,
        w: &CpuBuffer,
        bias: &CpuBuffer,
        y: &mut CpuBuffer,
        ws: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "conv2d_fwd";
        check(
            p,
            OP,
            x.as_slice().len(),
            w.as_slice().len(),
            y.as_slice().len(),
        )?;
        check_len(OP, "bias", us(p.out_c), bias.as_slice().len())?;
        check_epilogue(OP, p.activation)?;
        check_len(OP, "ws", self.conv2d_workspace_len(p), ws.as_slice().len())?;
        let (patch, oc) = (p.patch_len(), us(p.out_c));
        let rows = p.out_pixels();
        // Bias and activation in the product's store, while the tile is hot.
        let epilogue = Epilogue {
            bias: Some(&bias.as_slice()[..oc]),
            activation: p.activation,
            negative_slope: p.negative_slope,
        };
        if winograd::applies(p) {
            winograd::forward(
                self,
                p,
                &x.as_slice()[..p.input_len()],
                w.as_slice(),
                &epilogue,
                y.as_mut_slice(),
                ws.as_mut_slice(),
            );
            return Ok(());
        }
        sgemm_lhs(
            self.inner(),
            1.0,
            Lhs::Patches(patches(p, &x.as_slice()[..p.input_len()])),
            MatRef::row_major(w.as_slice(), patch, oc),
            0.0,
            MatMut::row_major(&mut y.as_mut_slice()[..rows * oc], rows, oc),
            &epilogue,
        );
        Ok(())
    }

    fn conv2d_bwd(
        &self,
        p: &Conv2dParams,
        x: &CpuBuffer,
        w: &CpuBuffer,
        dy: &CpuBuffer,
        dw: &mut CpuBuffer,
        dbias: &mut CpuBuffer,
        dx: Option<InputGrad<'_, CpuBuffer>>,
        ws: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "conv2d_bwd";
        check(
            p,
            OP,
            x.as_slice().len(),
            w.as_slice().len(),
            dy.as_slice().len(),
        )?;
        check_len(OP, "dw", p.weight_len(), dw.as_slice().len())?;
        check_len(OP, "dbias", us(p.out_c), dbias.as_slice().len())?;
        check_len(OP, "ws", self.conv2d_workspace_len(p), ws.as_slice().len())?;
        if let Some(dx) = &dx {
            check_len(OP, "dx", p.input_len(), dx.buffer.as_slice().len())?;
        }
        let (patch, oc) = (p.patch_len(), us(p.out_c));
        let pixels = us(p.out_h) * us(p.out_w);
        let image_len = us(p.in_h) * us(p.in_w) * us(p.in_c);
        let wm = MatRef::row_major(w.as_slice(), patch, oc);
        let rows = p.out_pixels();
        let dy = &dy.as_slice()[..rows * oc];
        if winograd::applies(p) {
            // Both gradients from the transform of the output gradient.
            winograd::gradients(
                self,
                p,
                &x.as_slice()[..p.input_len()],
                w.as_slice(),
                dy,
                &mut dw.as_mut_slice()[..patch * oc],
                dx.map(|dx| InputGrad {
                    buffer: &mut dx.buffer.as_mut_slice()[..p.input_len()],
                    accumulate: dx.accumulate,
                }),
                ws.as_mut_slice(),
            );
        } else {
            sgemm_lhs(
                self.inner(),
                1.0,
                Lhs::PatchesT(patches(p, &x.as_slice()[..p.input_len()])),
                MatRef::row_major(dy, rows, oc),
                1.0,
                MatMut::row_major(&mut dw.as_mut_slice()[..patch * oc], patch, oc),
                &Epilogue::NONE,
            );
            if let Some(InputGrad {
                buffer: dx,
                accumulate,
            }) = dx
            {
                let block = images_per_block(p);
                for first in (0..us(p.batch)).step_by(block) {
                    let images = block.min(us(p.batch) - first);
                    let rows = images * pixels;
                    let dym = MatRef::row_major(&dy[first * pixels * oc..][..rows * oc], rows, oc);
                    let dcol = &mut ws.as_mut_slice()[..rows * patch];
                    sgemm(
                        self.inner(),
                        1.0,
                        dym,
                        wm.t(),
                        0.0,
                        MatMut::row_major(dcol, rows, patch),
                    );
                    let dcol = &ws.as_slice()[..rows * patch];
                    let dxs = &mut dx.as_mut_slice()[first * image_len..][..images * image_len];
                    self.par_chunks_mut(dxs, image_len, |n, image| {
                        let col = &dcol[n * pixels * patch..][..pixels * patch];
                        col2im_image(p, col, image, accumulate);
                    });
                }
            }
        }
        column_sums_into(self, dy, oc, &mut dbias.as_mut_slice()[..oc]);
        Ok(())
    }
}
