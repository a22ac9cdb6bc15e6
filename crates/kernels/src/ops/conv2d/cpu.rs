//! Convolution on the CPU: im2col over the whole batch, then one packed SGEMM.

use super::{Conv2dKernel, Conv2dParams};
use crate::cpu::gemm::{Epilogue, MatMut, MatRef, sgemm, sgemm_with};
use crate::error::check_len;
use crate::ops::bias::cpu::{check_epilogue, column_sums_into};
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Result};

/// `dst.copy_from_slice(src)`, without a `memcpy` call for the short runs of a
/// first convolution layer (3x3 over 3 channels: 9 values): two overlapping
/// fixed-size copies, each a single vector load and store.
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    debug_assert_eq!(n, src.len());
    if (8..=16).contains(&n) {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if (4..8).contains(&n) {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else {
        dst.copy_from_slice(src);
    }
}

/// Writes the patch rows of output row `(n, oy)`: `ow` rows of `patch_len` values.
fn im2col_row(p: &Conv2dParams, x: &[f32], n: usize, oy: usize, out: &mut [f32]) {
    let (ih, iw, ic) = (us(p.in_h), us(p.in_w), us(p.in_c));
    let (kh, kw) = (us(p.kernel_h), us(p.kernel_w));
    let run = kw * ic;
    let patch = kh * run;
    let image = &x[n * ih * iw * ic..(n + 1) * ih * iw * ic];
    for ox in 0..us(p.out_w) {
        let dst = &mut out[ox * patch..(ox + 1) * patch];
        let x0 = (ox * us(p.stride_w)) as isize - p.pad_left as isize;
        for ky in 0..kh {
            let y = (oy * us(p.stride_h) + ky) as isize - p.pad_top as isize;
            let dst = &mut dst[ky * run..(ky + 1) * run];
            if y < 0 || y >= ih as isize {
                dst.fill(0.0);
                continue;
            }
            let row = &image[y as usize * iw * ic..(y as usize + 1) * iw * ic];
            if x0 >= 0 && x0 as usize + kw <= iw {
                let s = x0 as usize * ic;
                copy_run(dst, &row[s..s + run]);
            } else {
                for kx in 0..kw {
                    let xx = x0 + kx as isize;
                    let d = &mut dst[kx * ic..(kx + 1) * ic];
                    if xx < 0 || xx >= iw as isize {
                        d.fill(0.0);
                    } else {
                        d.copy_from_slice(&row[xx as usize * ic..(xx as usize + 1) * ic]);
                    }
                }
            }
        }
    }
}

/// Adds one image's patch rows `col` back into its input gradient (`image` zeroed).
fn col2im_image(p: &Conv2dParams, col: &[f32], image: &mut [f32]) {
    let (ih, iw, ic) = (us(p.in_h), us(p.in_w), us(p.in_c));
    let (kh, kw) = (us(p.kernel_h), us(p.kernel_w));
    let (oh, ow) = (us(p.out_h), us(p.out_w));
    let run = kw * ic;
    let patch = kh * run;
    image.fill(0.0);
    for oy in 0..oh {
        for ox in 0..ow {
            let src = &col[(oy * ow + ox) * patch..][..patch];
            let x0 = (ox * us(p.stride_w)) as isize - p.pad_left as isize;
            for ky in 0..kh {
                let y = (oy * us(p.stride_h) + ky) as isize - p.pad_top as isize;
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

/// The patch matrix of one block of images is kept at about this size (the two
/// cores' L2 caches together; measured against 1 and 4 MB and the whole batch on the
/// seed CNN), so that it stays in cache between being written and being multiplied:
/// the whole matrix (12 MB for the seed CNN's second layer at batch 64) would make
/// every convolution a round trip through memory.
const PATCH_BLOCK_BYTES: usize = 1 << 21;

/// Images per block for geometry `p` (at least one).
fn images_per_block(p: &Conv2dParams) -> usize {
    let per_image = us(p.out_h) * us(p.out_w) * p.patch_len() * std::mem::size_of::<f32>();
    (PATCH_BLOCK_BYTES / per_image.max(1)).clamp(1, us(p.batch).max(1))
}

impl Cpu {
    /// Writes the patch rows of images `first..first + count` into `col`.
    fn im2col_block(&self, p: &Conv2dParams, x: &[f32], first: usize, col: &mut [f32]) {
        let row_len = us(p.out_w) * p.patch_len();
        let oh = us(p.out_h);
        self.par_chunks_mut(col, row_len, |t, out| {
            let g = first * oh + t;
            im2col_row(p, x, g / oh, g % oh, out);
        });
    }
}

impl Conv2dKernel for Cpu {
    fn conv2d_workspace_len(&self, p: &Conv2dParams) -> usize {
        images_per_block(p) * us(p.out_h) * us(p.out_w) * p.patch_len()
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
        let pixels = us(p.out_h) * us(p.out_w);
        let wm = MatRef::row_major(w.as_slice(), patch, oc);
        let bias = &bias.as_slice()[..oc];
        let block = images_per_block(p);
        for first in (0..us(p.batch)).step_by(block) {
            let rows = block.min(us(p.batch) - first) * pixels;
            let col = &mut ws.as_mut_slice()[..rows * patch];
            self.im2col_block(p, x.as_slice(), first, col);
            let col = MatRef::row_major(col, rows, patch);
            let ys = &mut y.as_mut_slice()[first * pixels * oc..][..rows * oc];
            // Bias and activation in the product's store, while the tile is hot.
            let epilogue = Epilogue {
                bias: Some(bias),
                activation: p.activation,
                negative_slope: p.negative_slope,
            };
            let ys = MatMut::row_major(ys, rows, oc);
            sgemm_with(self.inner(), 1.0, col, wm, 0.0, ys, &epilogue);
        }
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
        mut dx: Option<&mut CpuBuffer>,
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
            check_len(OP, "dx", p.input_len(), dx.as_slice().len())?;
        }
        let (patch, oc) = (p.patch_len(), us(p.out_c));
        let pixels = us(p.out_h) * us(p.out_w);
        let image_len = us(p.in_h) * us(p.in_w) * us(p.in_c);
        let wm = MatRef::row_major(w.as_slice(), patch, oc);
        let block = images_per_block(p);
        for first in (0..us(p.batch)).step_by(block) {
            let images = block.min(us(p.batch) - first);
            let rows = images * pixels;
            let dym =
                MatRef::row_major(&dy.as_slice()[first * pixels * oc..][..rows * oc], rows, oc);
            // The patches again, from the (nine times smaller) input: cheaper than
            // keeping the forward's patch matrix in memory.
            let col = &mut ws.as_mut_slice()[..rows * patch];
            self.im2col_block(p, x.as_slice(), first, col);
            let dws = MatMut::row_major(&mut dw.as_mut_slice()[..patch * oc], patch, oc);
            sgemm(
                self.inner(),
                1.0,
                MatRef::row_major(col, rows, patch).t(),
                dym,
                1.0,
                dws,
            );
            if let Some(dx) = dx.as_deref_mut() {
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
                    col2im_image(p, &dcol[n * pixels * patch..][..pixels * patch], image);
                });
            }
        }
        let rows = p.out_pixels();
        column_sums_into(
            self,
            &dy.as_slice()[..rows * oc],
            oc,
            &mut dbias.as_mut_slice()[..oc],
        );
        Ok(())
    }
}
