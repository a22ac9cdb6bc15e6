//! Pooling on the CPU, one image per task.
//!
//! In training mode max pooling keeps each output's place in its window (the
//! reserve, one `f32` per output value), so that the backward pass writes the input
//! gradient from the output gradient and those places without reading the forward's
//! input again: for the seed CNN's first pooling, 7 MB at batch 64 that would come
//! back from L3 or memory.

use super::{Pool2dKernel, Pool2dParams, PoolForward, PoolKind};
use crate::cpu::SendPtr;
use crate::cpu::gemm::Isa;
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

/// The unclipped window's first row and column for output cell `(oy, ox)` (negative
/// inside the padding).
#[inline]
fn origin(p: &Pool2dParams, oy: usize, ox: usize) -> (isize, isize) {
    (
        (oy * us(p.stride_h)) as isize - p.pad_top as isize,
        (ox * us(p.stride_w)) as isize - p.pad_left as isize,
    )
}

/// Where input cell `(yy, xx)` lies in the window starting at `(wy, wx)`, row-major,
/// as the reserve stores it.
#[inline]
fn place(p: &Pool2dParams, (wy, wx): (isize, isize), yy: usize, xx: usize) -> f32 {
    ((yy as isize - wy) * p.size_w as isize + (xx as isize - wx)) as f32
}

/// Channels of one vector, in max pooling's forward pass with places.
const LANES: usize = 8;

/// Max pooling of one window over whole vectors of channels, with places (see
/// [`avx2::max_with_places`]).
type MaxWithPlaces =
    unsafe fn(*const f32, (usize, usize, usize), usize, (f32, f32), *mut f32, *mut f32);

/// Channels handled together in max pooling's backward pass; the per-channel
/// "already routed" flags live on the stack.
const CHANNEL_BLOCK: usize = 64;

/// One image; `arg`, when given for max pooling, receives each output's place in its
/// window.
fn forward_image(isa: Isa, p: &Pool2dParams, x: &[f32], y: &mut [f32], arg: Option<&mut [f32]>) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` and `Isa::Avx2Fma` are only chosen where the CPU has
        // AVX2 and FMA.
        Isa::Avx512 | Isa::Avx2Fma => unsafe { forward_image_avx2(p, x, y, arg) },
        Isa::Portable => forward_image_with(p, x, y, arg, None),
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_image_avx2(p: &Pool2dParams, x: &[f32], y: &mut [f32], arg: Option<&mut [f32]>) {
    forward_image_with(p, x, y, arg, Some(avx2::max_with_places));
}

/// The loops, compiled with the caller's instruction set: the selects of max pooling
/// vectorise with AVX2's blends.
#[inline(always)]
fn forward_image_with(
    p: &Pool2dParams,
    x: &[f32],
    y: &mut [f32],
    mut arg: Option<&mut [f32]>,
    vectors: Option<MaxWithPlaces>,
) {
    let (iw, c) = (us(p.in_w), us(p.channels));
    if let (PoolKind::Max, Some(arg), Some(vectors)) = (p.kind, arg.as_deref_mut(), vectors)
        && p.windows_tile()
        && c.is_multiple_of(LANES)
    {
        // Windows that tile the input (the usual `MaxPool(2)`): all of them whole,
        // none clipped, so no window arithmetic per cell.
        let (oh, ow, sh, sw) = (us(p.out_h), us(p.out_w), us(p.size_h), us(p.size_w));
        assert!(
            oh * sh <= us(p.in_h)
                && ow * sw <= iw
                && x.len() >= us(p.in_h) * iw * c
                && y.len() >= oh * ow * c
                && arg.len() >= oh * ow * c,
            "pool2d: short image"
        );
        for oy in 0..oh {
            for ox in 0..ow {
                let (start, cell) = (((oy * sh) * iw + ox * sw) * c, (oy * ow + ox) * c);
                // SAFETY: the window's `sh x sw` cells lie inside the image, its output
                // cell's `c` values inside `y` and `arg` (all checked above); `vectors`
                // needs AVX2, which the caller that passed it has.
                unsafe {
                    vectors(
                        x.as_ptr().add(start),
                        (sh, sw, iw * c),
                        c,
                        (0.0, sw as f32),
                        y.as_mut_ptr().add(cell),
                        arg.as_mut_ptr().add(cell),
                    );
                }
            }
        }
        return;
    }
    for oy in 0..us(p.out_h) {
        for ox in 0..us(p.out_w) {
            let (y0, y1, x0, x1) = window(p, oy, ox);
            let cell = (oy * us(p.out_w) + ox) * c;
            let out = &mut y[cell..][..c];
            match (p.kind, arg.as_deref_mut()) {
                (PoolKind::Max, None) => {
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
                (PoolKind::Max, Some(arg)) => {
                    let arg = &mut arg[cell..][..c];
                    let at = origin(p, oy, ox);
                    let first = place(p, at, y0, x0);
                    // Whole vectors of channels first, where the CPU has them.
                    let c0 = if let Some(vectors) = vectors {
                        let image_row = iw * c;
                        let start = (y0 * iw + x0) * c;
                        let (rows, cols) = (y1 - y0, x1 - x0);
                        assert!(
                            rows == 0
                                || cols == 0
                                || start + (rows - 1) * image_row + (cols - 1) * c + c <= x.len()
                        );
                        // SAFETY: the window's cells lie inside the image (checked);
                        // `out` and `arg` hold `c` values; `vectors` needs AVX2, which the
                        // caller that passed it has.
                        unsafe {
                            vectors(
                                x[start..].as_ptr(),
                                (rows, cols, image_row),
                                c,
                                (first, p.size_w as f32),
                                out.as_mut_ptr(),
                                arg.as_mut_ptr(),
                            );
                        }
                        c / LANES * LANES
                    } else {
                        0
                    };
                    // The channels left, one at a time.
                    for k in c0..c {
                        let (mut best, mut at_best) = (f32::NEG_INFINITY, first);
                        for yy in y0..y1 {
                            for xx in x0..x1 {
                                let v = x[(yy * iw + xx) * c + k];
                                if v > best {
                                    (best, at_best) = (v, place(p, at, yy, xx));
                                }
                            }
                        }
                        out[k] = best;
                        arg[k] = at_best;
                    }
                }
                (PoolKind::Avg, _) => {
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

/// Zeros the cells of one image's input gradient that max pooling's backward pass
/// does not write: those past the last window where the windows `tiled` the input
/// (each other cell is written once), else all of them (the pass adds).
fn zero_unwritten(p: &Pool2dParams, tiled: bool, dx: &mut [f32]) {
    let (iw, c) = (us(p.in_w), us(p.channels));
    if tiled {
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
}

/// Max pooling's backward pass over one image from the forward's places `arg`: each
/// output gradient goes to the cell at its place (with `relu`, only where the
/// maximum `y` is positive).
#[allow(clippy::too_many_arguments)]
fn backward_image_from_places(
    isa: Isa,
    p: &Pool2dParams,
    arg: &[f32],
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    relu: bool,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` and `Isa::Avx2Fma` are only chosen where the CPU has
        // AVX2 and FMA.
        Isa::Avx512 | Isa::Avx2Fma => unsafe {
            backward_image_from_places_avx2(p, arg, y, dy, dx, relu)
        },
        Isa::Portable => backward_image_from_places_with(p, arg, y, dy, dx, relu),
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backward_image_from_places_avx2(
    p: &Pool2dParams,
    arg: &[f32],
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    relu: bool,
) {
    backward_image_from_places_with(p, arg, y, dy, dx, relu);
}

/// The loops, compiled with the caller's instruction set.
#[inline(always)]
fn backward_image_from_places_with(
    p: &Pool2dParams,
    arg: &[f32],
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    relu: bool,
) {
    let (iw, c) = (us(p.in_w), us(p.channels));
    let tiled = p.windows_tile();
    zero_unwritten(p, tiled, dx);
    for oy in 0..us(p.out_h) {
        for ox in 0..us(p.out_w) {
            let (y0, y1, x0, x1) = window(p, oy, ox);
            let at = origin(p, oy, ox);
            let cell = (oy * us(p.out_w) + ox) * c;
            let (arg, best, g) = (&arg[cell..][..c], &y[cell..][..c], &dy[cell..][..c]);
            for yy in y0..y1 {
                for xx in x0..x1 {
                    let q = place(p, at, yy, xx);
                    let d = &mut dx[(yy * iw + xx) * c..][..c];
                    route((arg, best, g), q, d, (relu, tiled));
                }
            }
        }
    }
}

/// One cell's gradient over its channels: `g` where the place `arg` is `q` (and, with
/// `relu`, the maximum `best` positive), else zero; written, or added where windows
/// overlap (unless they `tiled` the input).
#[inline(always)]
fn route((arg, best, g): (&[f32], &[f32], &[f32]), q: f32, d: &mut [f32], how: (bool, bool)) {
    let cells = d.iter_mut().zip(arg).zip(best).zip(g);
    // One loop per case, each without branches, so that it vectorises.
    match how {
        (true, true) => {
            for (((d, &a), &b), &g) in cells {
                *d = if (a == q) & (b > 0.0) { g } else { 0.0 };
            }
        }
        (false, true) => {
            for (((d, &a), _), &g) in cells {
                *d = if a == q { g } else { 0.0 };
            }
        }
        (true, false) => {
            for (((d, &a), &b), &g) in cells {
                *d += if (a == q) & (b > 0.0) { g } else { 0.0 };
            }
        }
        (false, false) => {
            for (((d, &a), _), &g) in cells {
                *d += if a == q { g } else { 0.0 };
            }
        }
    }
}

/// The backward pass over one image; with `relu`, through the ReLU that produced `x`
/// (max pooling only): a window's gradient reaches its maximum only where that is
/// positive, the ReLU's derivative there.
fn backward_image(p: &Pool2dParams, x: &[f32], y: &[f32], dy: &[f32], dx: &mut [f32], relu: bool) {
    let (iw, c) = (us(p.in_w), us(p.channels));
    let tiled = p.windows_tile() && p.kind == PoolKind::Max;
    zero_unwritten(p, tiled, dx);
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
                                // A cell that does not take the gradient gets +0 (not
                                // `0 * g`, -0 for a negative `g`), like the pass from
                                // the reserve.
                                if tiled {
                                    for ((((d, &v), &b), &g), open) in cells {
                                        let hit = if v == b { *open } else { 0.0 };
                                        *d = if hit != 0.0 { g } else { 0.0 };
                                        *open -= hit;
                                    }
                                } else {
                                    for ((((d, &v), &b), &g), open) in cells {
                                        let hit = if v == b { *open } else { 0.0 };
                                        *d += if hit != 0.0 { g } else { 0.0 };
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
    fn pool2d_reserve_len(&self, p: &Pool2dParams) -> usize {
        match p.kind {
            PoolKind::Max => p.output_len(),
            PoolKind::Avg => 0,
        }
    }

    fn pool2d_fwd(
        &self,
        p: &Pool2dParams,
        x: &CpuBuffer,
        y: &mut CpuBuffer,
        reserve: Option<&mut CpuBuffer>,
    ) -> Result<()> {
        check_len("pool2d_fwd", "x", p.input_len(), x.as_slice().len())?;
        check_len("pool2d_fwd", "y", p.output_len(), y.as_slice().len())?;
        let reserve = match reserve {
            Some(r) if p.kind == PoolKind::Max => {
                check_len("pool2d_fwd", "reserve", p.output_len(), r.as_slice().len())?;
                Some(SendPtr(r.as_mut_slice().as_mut_ptr()))
            }
            _ => None,
        };
        let in_image = us(p.in_h) * us(p.in_w) * us(p.channels);
        let out_image = us(p.out_h) * us(p.out_w) * us(p.channels);
        let xs = x.as_slice();
        let isa = self.inner().gemm.isa();
        self.par_chunks_mut(
            &mut y.as_mut_slice()[..p.output_len()],
            out_image,
            |n, out| {
                // SAFETY: the reserve holds `output_len` values (checked above), of
                // which image `n`'s are written by this task alone.
                let arg = reserve.map(|r| unsafe {
                    std::slice::from_raw_parts_mut(r.get().add(n * out_image), out_image)
                });
                forward_image(isa, p, &xs[n * in_image..(n + 1) * in_image], out, arg);
            },
        );
        Ok(())
    }

    fn pool2d_bwd(
        &self,
        p: &Pool2dParams,
        fwd: PoolForward<'_, CpuBuffer>,
        dy: &CpuBuffer,
        dx: &mut CpuBuffer,
    ) -> Result<()> {
        self.pool_backward(p, fwd, dy, dx, false)
    }

    fn pool2d_bwd_through_relu(
        &self,
        p: &Pool2dParams,
        fwd: PoolForward<'_, CpuBuffer>,
        dy: &CpuBuffer,
        dx: &mut CpuBuffer,
    ) -> Result<()> {
        p.check_through_relu()?;
        self.pool_backward(p, fwd, dy, dx, true)
    }
}

impl Cpu {
    fn pool_backward(
        &self,
        p: &Pool2dParams,
        fwd: PoolForward<'_, CpuBuffer>,
        dy: &CpuBuffer,
        dx: &mut CpuBuffer,
        relu: bool,
    ) -> Result<()> {
        check_len("pool2d_bwd", "x", p.input_len(), fwd.x.as_slice().len())?;
        check_len("pool2d_bwd", "y", p.output_len(), fwd.y.as_slice().len())?;
        check_len("pool2d_bwd", "dy", p.output_len(), dy.as_slice().len())?;
        check_len("pool2d_bwd", "dx", p.input_len(), dx.as_slice().len())?;
        let places = match fwd.reserve {
            Some(r) if p.kind == PoolKind::Max => {
                check_len("pool2d_bwd", "reserve", p.output_len(), r.as_slice().len())?;
                Some(r.as_slice())
            }
            _ => None,
        };
        let in_image = us(p.in_h) * us(p.in_w) * us(p.channels);
        let out_image = us(p.out_h) * us(p.out_w) * us(p.channels);
        let (xs, ys, dys) = (fwd.x.as_slice(), fwd.y.as_slice(), dy.as_slice());
        let isa = self.inner().gemm.isa();
        self.par_chunks_mut(
            &mut dx.as_mut_slice()[..p.input_len()],
            in_image,
            |n, dxi| {
                let out = n * out_image..(n + 1) * out_image;
                let (y, dy) = (&ys[out.clone()], &dys[out.clone()]);
                match places {
                    Some(arg) => backward_image_from_places(isa, p, &arg[out], y, dy, dxi, relu),
                    None => {
                        backward_image(p, &xs[n * in_image..(n + 1) * in_image], y, dy, dxi, relu)
                    }
                }
            },
        );
        Ok(())
    }
}

/// Max pooling with places in AVX2 intrinsics: eight channels per vector, the maximum
/// and its place kept in registers over the window.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        _CMP_GT_OQ, _mm256_blendv_ps, _mm256_cmp_ps, _mm256_loadu_ps, _mm256_set1_ps,
        _mm256_storeu_ps,
    };

    use super::LANES;

    /// The maximum of each of the first `c / 8 * 8` channels over a window of
    /// `rows x cols` cells, cell `(a, b)` of channel `k` at `x + a * row + b * c + k`,
    /// into `out + k`, and its place (the first cell that holds it, `first + a * width
    /// + b`, or `first` where no cell beats minus infinity) into `arg + k`.
    ///
    /// # Safety
    /// The CPU must support AVX2; those reads and writes must be in bounds, the writes
    /// not aliased.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn max_with_places(
        x: *const f32,
        (rows, cols, row): (usize, usize, usize),
        c: usize,
        (first, width): (f32, f32),
        out: *mut f32,
        arg: *mut f32,
    ) {
        for k in (0..c / LANES * LANES).step_by(LANES) {
            let mut best = _mm256_set1_ps(f32::NEG_INFINITY);
            let mut places = _mm256_set1_ps(first);
            for a in 0..rows {
                for b in 0..cols {
                    // SAFETY: the caller's contract covers every offset here.
                    let v = unsafe { _mm256_loadu_ps(x.add(a * row + b * c + k)) };
                    // Strictly greater: the first of tied cells stays; NaN never wins.
                    let more = _mm256_cmp_ps::<_CMP_GT_OQ>(v, best);
                    best = _mm256_blendv_ps(best, v, more);
                    let q = _mm256_set1_ps(first + a as f32 * width + b as f32);
                    places = _mm256_blendv_ps(places, q, more);
                }
            }
            // SAFETY: the caller's contract.
            unsafe {
                _mm256_storeu_ps(out.add(k), best);
                _mm256_storeu_ps(arg.add(k), places);
            }
        }
    }
}
