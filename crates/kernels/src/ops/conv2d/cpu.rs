//! Convolution on the CPU: im2col over the whole batch, then one packed SGEMM.

use super::{Conv2dKernel, Conv2dParams};
use crate::cpu::gemm::{MatMut, MatRef, sgemm};
use crate::error::check_len;
use crate::ops::bias::BiasParams;
use crate::ops::bias::cpu::{bias_activation_rows, check_epilogue};
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Result};

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
                dst.copy_from_slice(&row[s..s + run]);
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

/// Adds the patch rows of image `n` back into its input gradient (`image` zeroed).
fn col2im_image(p: &Conv2dParams, col: &[f32], n: usize, image: &mut [f32]) {
    let (ih, iw, ic) = (us(p.in_h), us(p.in_w), us(p.in_c));
    let (kh, kw) = (us(p.kernel_h), us(p.kernel_w));
    let (oh, ow) = (us(p.out_h), us(p.out_w));
    let run = kw * ic;
    let patch = kh * run;
    image.fill(0.0);
    for oy in 0..oh {
        for ox in 0..ow {
            let src = &col[((n * oh + oy) * ow + ox) * patch..][..patch];
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

impl Conv2dKernel for Cpu {
    fn conv2d_workspace_len(&self, p: &Conv2dParams) -> usize {
        p.out_pixels() * p.patch_len()
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
        let (rows, patch, oc) = (p.out_pixels(), p.patch_len(), us(p.out_c));
        let col = &mut ws.as_mut_slice()[..rows * patch];
        let xs = x.as_slice();
        let ow = us(p.out_w);
        self.par_chunks_mut(col, ow * patch, |t, out| {
            let (n, oy) = (t / us(p.out_h), t % us(p.out_h));
            im2col_row(p, xs, n, oy, out);
        });
        let col = MatRef::row_major(&ws.as_slice()[..rows * patch], rows, patch);
        let wm = MatRef::row_major(w.as_slice(), patch, oc);
        let ys = &mut y.as_mut_slice()[..rows * oc];
        sgemm(
            self.inner(),
            1.0,
            col,
            wm,
            0.0,
            MatMut::row_major(ys, rows, oc),
        );
        let epilogue = BiasParams {
            activation: p.activation,
            negative_slope: p.negative_slope,
            ..BiasParams::new(p.batch * p.out_h * p.out_w, p.out_c)
        };
        bias_activation_rows(self, &epilogue, &bias.as_slice()[..oc], ys);
        Ok(())
    }

    fn conv2d_bwd_filter(
        &self,
        p: &Conv2dParams,
        _x: &CpuBuffer,
        ws: &CpuBuffer,
        dy: &CpuBuffer,
        dw: &mut CpuBuffer,
        dbias: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "conv2d_bwd_filter";
        let (rows, patch, oc) = (p.out_pixels(), p.patch_len(), us(p.out_c));
        check_len(OP, "ws", rows * patch, ws.as_slice().len())?;
        check_len(OP, "dy", rows * oc, dy.as_slice().len())?;
        check_len(OP, "dw", patch * oc, dw.as_slice().len())?;
        check_len(OP, "dbias", oc, dbias.as_slice().len())?;
        let col = MatRef::row_major(&ws.as_slice()[..rows * patch], rows, patch);
        let dym = MatRef::row_major(&dy.as_slice()[..rows * oc], rows, oc);
        let dws = &mut dw.as_mut_slice()[..patch * oc];
        sgemm(
            self.inner(),
            1.0,
            col.t(),
            dym,
            1.0,
            MatMut::row_major(dws, patch, oc),
        );
        crate::ops::bias::cpu::column_sums_into(
            self,
            &dy.as_slice()[..rows * oc],
            oc,
            &mut dbias.as_mut_slice()[..oc],
        );
        Ok(())
    }

    fn conv2d_bwd_data(
        &self,
        p: &Conv2dParams,
        dy: &CpuBuffer,
        w: &CpuBuffer,
        dx: &mut CpuBuffer,
        ws: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "conv2d_bwd_data";
        check(
            p,
            OP,
            dx.as_slice().len(),
            w.as_slice().len(),
            dy.as_slice().len(),
        )?;
        check_len(OP, "ws", self.conv2d_workspace_len(p), ws.as_slice().len())?;
        let (rows, patch, oc) = (p.out_pixels(), p.patch_len(), us(p.out_c));
        let dym = MatRef::row_major(&dy.as_slice()[..rows * oc], rows, oc);
        let wm = MatRef::row_major(w.as_slice(), patch, oc);
        let dcol = &mut ws.as_mut_slice()[..rows * patch];
        sgemm(
            self.inner(),
            1.0,
            dym,
            wm.t(),
            0.0,
            MatMut::row_major(dcol, rows, patch),
        );
        let image_len = us(p.in_h) * us(p.in_w) * us(p.in_c);
        let dcol = &ws.as_slice()[..rows * patch];
        let dxs = &mut dx.as_mut_slice()[..p.input_len()];
        self.par_chunks_mut(dxs, image_len, |n, image| col2im_image(p, dcol, n, image));
        Ok(())
    }
}
