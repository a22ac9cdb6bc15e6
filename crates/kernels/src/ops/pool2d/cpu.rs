//! Pooling on the CPU, one image per task.

use super::{Pool2dKernel, Pool2dParams, PoolKind};
use crate::error::check_len;
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Result};

/// The input rows and columns of output cell `(oy, ox)`, clipped to the input.
#[inline]
fn window(p: &Pool2dParams, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
    let y0 = (oy * us(p.stride_h)) as isize - p.pad_top as isize;
    let x0 = (ox * us(p.stride_w)) as isize - p.pad_left as isize;
    let y1 = (y0 + p.size_h as isize).min(p.in_h as isize);
    let x1 = (x0 + p.size_w as isize).min(p.in_w as isize);
    (
        y0.max(0) as usize,
        y1.max(0) as usize,
        x0.max(0) as usize,
        x1.max(0) as usize,
    )
}

/// Channels handled together in max pooling's backward pass; the per-channel
/// "already routed" flags live on the stack.
const CHANNEL_BLOCK: usize = 64;

fn forward_image(p: &Pool2dParams, x: &[f32], y: &mut [f32]) {
    let (iw, c) = (us(p.in_w), us(p.channels));
    for oy in 0..us(p.out_h) {
        for ox in 0..us(p.out_w) {
            let (y0, y1, x0, x1) = window(p, oy, ox);
            let out = &mut y[(oy * us(p.out_w) + ox) * c..][..c];
            match p.kind {
                PoolKind::Max => {
                    out.fill(f32::NEG_INFINITY);
                    for yy in y0..y1 {
                        for xx in x0..x1 {
                            let src = &x[(yy * iw + xx) * c..][..c];
                            // A select, not a conditional store, so that it vectorises.
                            for (o, &v) in out.iter_mut().zip(src) {
                                *o = if v > *o { v } else { *o };
                            }
                        }
                    }
                }
                PoolKind::Avg => {
                    out.fill(0.0);
                    for yy in y0..y1 {
                        for xx in x0..x1 {
                            let src = &x[(yy * iw + xx) * c..][..c];
                            for (o, &v) in out.iter_mut().zip(src) {
                                *o += v;
                            }
                        }
                    }
                    let inv = 1.0 / ((y1 - y0) * (x1 - x0)).max(1) as f32;
                    for o in out.iter_mut() {
                        *o *= inv;
                    }
                }
            }
        }
    }
}

/// Whether the windows tile the input without overlap or padding (the usual
/// `MaxPool(2)`): then every input cell belongs to at most one window, and the
/// backward pass writes each cell once instead of zeroing the image and adding.
fn windows_tile(p: &Pool2dParams) -> bool {
    p.stride_h == p.size_h && p.stride_w == p.size_w && p.pad_top == 0 && p.pad_left == 0
}

/// The backward pass over one image; with `relu`, through the ReLU that produced `x`
/// (max pooling only): a window's gradient reaches its maximum only where that is
/// positive, the ReLU's derivative there.
fn backward_image(p: &Pool2dParams, x: &[f32], y: &[f32], dy: &[f32], dx: &mut [f32], relu: bool) {
    let (iw, c) = (us(p.in_w), us(p.channels));
    let tiled = windows_tile(p) && p.kind == PoolKind::Max;
    if tiled {
        // Only the cells past the last window (an odd edge) are left for zeros.
        let (covered_h, covered_w) = (us(p.out_h) * us(p.size_h), us(p.out_w) * us(p.size_w));
        for yy in 0..us(p.in_h) {
            let row = &mut dx[yy * iw * c..(yy + 1) * iw * c];
            if yy >= covered_h {
                row.fill(0.0);
            } else {
                row[covered_w * c..].fill(0.0);
            }
        }
    } else {
        dx.fill(0.0);
    }
    for oy in 0..us(p.out_h) {
        for ox in 0..us(p.out_w) {
            let (y0, y1, x0, x1) = window(p, oy, ox);
            let cell = (oy * us(p.out_w) + ox) * c;
            let g = &dy[cell..][..c];
            match p.kind {
                PoolKind::Max => {
                    // The forward output is one of the window's values, bit for bit:
                    // route each channel's gradient to the first cell equal to it.
                    let best = &y[cell..][..c];
                    for start in (0..c).step_by(CHANNEL_BLOCK) {
                        let len = CHANNEL_BLOCK.min(c - start);
                        // A channel whose maximum is not positive gets no gradient
                        // through the ReLU: it starts as already routed.
                        let mut open = [1.0f32; CHANNEL_BLOCK];
                        if relu {
                            for (o, &b) in open.iter_mut().zip(&best[start..start + len]) {
                                *o = if b > 0.0 { 1.0 } else { 0.0 };
                            }
                        }
                        let (g, best) = (&g[start..start + len], &best[start..start + len]);
                        for yy in y0..y1 {
                            for xx in x0..x1 {
                                let at = (yy * iw + xx) * c + start;
                                let (xs, d) = (&x[at..at + len], &mut dx[at..at + len]);
                                let cells =
                                    d.iter_mut().zip(xs).zip(best).zip(g).zip(&mut open[..len]);
                                // Written once when windows tile: no add, and no
                                // zeroing pass before.
                                if tiled {
                                    for ((((d, &v), &b), &g), open) in cells {
                                        let hit = if v == b { *open } else { 0.0 };
                                        *d = hit * g;
                                        *open -= hit;
                                    }
                                } else {
                                    for ((((d, &v), &b), &g), open) in cells {
                                        let hit = if v == b { *open } else { 0.0 };
                                        *d += hit * g;
                                        *open -= hit;
                                    }
                                }
                            }
                        }
                    }
                }
                PoolKind::Avg => {
                    let inv = 1.0 / ((y1 - y0) * (x1 - x0)).max(1) as f32;
                    for yy in y0..y1 {
                        for xx in x0..x1 {
                            let d = &mut dx[(yy * iw + xx) * c..][..c];
                            for (d, g) in d.iter_mut().zip(g) {
                                *d += g * inv;
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Pool2dKernel for Cpu {
    fn pool2d_fwd(&self, p: &Pool2dParams, x: &CpuBuffer, y: &mut CpuBuffer) -> Result<()> {
        check_len("pool2d_fwd", "x", p.input_len(), x.as_slice().len())?;
        check_len("pool2d_fwd", "y", p.output_len(), y.as_slice().len())?;
        let in_image = us(p.in_h) * us(p.in_w) * us(p.channels);
        let out_image = us(p.out_h) * us(p.out_w) * us(p.channels);
        let xs = x.as_slice();
        self.par_chunks_mut(
            &mut y.as_mut_slice()[..p.output_len()],
            out_image,
            |n, out| {
                forward_image(p, &xs[n * in_image..(n + 1) * in_image], out);
            },
        );
        Ok(())
    }

    fn pool2d_bwd(
        &self,
        p: &Pool2dParams,
        x: &CpuBuffer,
        y: &CpuBuffer,
        dy: &CpuBuffer,
        dx: &mut CpuBuffer,
    ) -> Result<()> {
        self.pool_backward(p, x, y, dy, dx, false)
    }

    fn pool2d_bwd_through_relu(
        &self,
        p: &Pool2dParams,
        x: &CpuBuffer,
        y: &CpuBuffer,
        dy: &CpuBuffer,
        dx: &mut CpuBuffer,
    ) -> Result<()> {
        p.check_through_relu()?;
        self.pool_backward(p, x, y, dy, dx, true)
    }
}

impl Cpu {
    fn pool_backward(
        &self,
        p: &Pool2dParams,
        x: &CpuBuffer,
        y: &CpuBuffer,
        dy: &CpuBuffer,
        dx: &mut CpuBuffer,
        relu: bool,
    ) -> Result<()> {
        check_len("pool2d_bwd", "x", p.input_len(), x.as_slice().len())?;
        check_len("pool2d_bwd", "y", p.output_len(), y.as_slice().len())?;
        check_len("pool2d_bwd", "dy", p.output_len(), dy.as_slice().len())?;
        check_len("pool2d_bwd", "dx", p.input_len(), dx.as_slice().len())?;
        let in_image = us(p.in_h) * us(p.in_w) * us(p.channels);
        let out_image = us(p.out_h) * us(p.out_w) * us(p.channels);
        let (xs, ys, dys) = (x.as_slice(), y.as_slice(), dy.as_slice());
        self.par_chunks_mut(
            &mut dx.as_mut_slice()[..p.input_len()],
            in_image,
            |n, dxi| {
                backward_image(
                    p,
                    &xs[n * in_image..(n + 1) * in_image],
                    &ys[n * out_image..(n + 1) * out_image],
                    &dys[n * out_image..(n + 1) * out_image],
                    dxi,
                    relu,
                );
            },
        );
        Ok(())
    }
}
