//! Batch normalisation on the CPU. The sums over rows split the rows into bands, one a
//! thread, each summing into its own `f64` partials in the workspace; the bands are
//! then added in order, so the result does not depend on scheduling. The element-wise
//! passes split the rows over the threads, a block of rows at a time, each loop over
//! the channels simple enough to vectorise.

use std::ops::Range;

use super::{BatchNormKernel, BatchNormParams};
use crate::cpu::SendPtr;
use crate::ops::activation::cpu::forward_elementwise;
use crate::ops::{InputGrad, us};
use crate::{Cpu, CpuBuffer, Result};

/// Values a task covers at least: below this a pass is not worth splitting.
const MIN_TASK: usize = 1 << 14;

/// Values a block of the forward's output holds before the activation runs over it,
/// while it is in L1.
const BLOCK: usize = 1024;

/// A cache line, in `f64`s: each band's partial sums start on one of their own, so
/// that threads summing different bands never write the same line.
const LINE: usize = 8;

/// Values of a band's partial sums: `2 * channels`, rounded up to whole cache lines.
fn slot_len(channels: usize) -> usize {
    (2 * channels).next_multiple_of(LINE)
}

/// Views `ws` (whose length the caller checked against
/// [`BatchNormKernel::batch_norm_workspace_len`]) as `3 * channels` per-channel
/// coefficients and, from the next cache line, one slot of partial sums a thread.
fn split_workspace(ws: &mut [f32], channels: usize, threads: usize) -> (&mut [f32], &mut [f64]) {
    let (coefficients, rest) = ws.split_at_mut(3 * channels);
    let skip = rest
        .as_ptr()
        .align_offset(LINE * std::mem::size_of::<f64>());
    let len = slot_len(channels) * threads;
    assert!(
        skip < 2 * LINE && skip + 2 * len <= rest.len(),
        "the workspace's length was checked"
    );
    // SAFETY: the `len` f64 from `skip` lie inside `rest` (checked above), start on a
    // cache line (so are aligned), and are exclusively borrowed for the returned
    // lifetime; every bit pattern is a valid f64.
    let partials =
        unsafe { std::slice::from_raw_parts_mut(rest.as_mut_ptr().add(skip).cast::<f64>(), len) };
    (coefficients, partials)
}

/// Runs `f` compiled for AVX2 and FMA where the CPU has them, else as built: the
/// loops below are `#[inline(always)]`, so the copy of `f` inside a
/// `#[target_feature]` function compiles them eight lanes wide.
#[inline(always)]
fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// The four rows of `c` values at the start of `v`, each exactly `c` long (so that
/// indices below `c` need no checks).
#[inline(always)]
fn four_rows(v: &[f32], c: usize) -> (&[f32], &[f32], &[f32], &[f32]) {
    let (r0, v) = v.split_at(c);
    let (r1, v) = v.split_at(c);
    let (r2, v) = v.split_at(c);
    (r0, r1, r2, &v[..c])
}

/// `s1 += sum(x - first)` and `s2 += sum((x - first)^2)` per channel over the rows of
/// `x`, in `f64`. Four rows at a time: the sums are loaded and stored once for four
/// rows.
#[inline(always)]
fn sums_fwd(x: &[f32], first: &[f32], s1: &mut [f64], s2: &mut [f64]) {
    let c = first.len();
    let (s1, s2) = (&mut s1[..c], &mut s2[..c]);
    let mut quads = x.chunks_exact(4 * c);
    for q in &mut quads {
        let (r0, r1, r2, r3) = four_rows(q, c);
        for i in 0..c {
            let k = f64::from(first[i]);
            let (d0, d1) = (f64::from(r0[i]) - k, f64::from(r1[i]) - k);
            let (d2, d3) = (f64::from(r2[i]) - k, f64::from(r3[i]) - k);
            s1[i] += (d0 + d1) + (d2 + d3);
            s2[i] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
        }
    }
    for row in quads.remainder().chunks_exact(c) {
        let row = &row[..c];
        for i in 0..c {
            let d = f64::from(row[i]) - f64::from(first[i]);
            s1[i] += d;
            s2[i] += d * d;
        }
    }
}

/// `s1 += sum(dy)` and `s2 += sum(dy * (x - mean))` per channel over the rows of `x`
/// and `dy`, in `f64`, four rows at a time.
#[inline(always)]
fn sums_bwd(x: &[f32], dy: &[f32], mean: &[f32], s1: &mut [f64], s2: &mut [f64]) {
    let c = mean.len();
    let (s1, s2) = (&mut s1[..c], &mut s2[..c]);
    let mut quads = x.chunks_exact(4 * c).zip(dy.chunks_exact(4 * c));
    for (x, dy) in &mut quads {
        let (x0, x1, x2, x3) = four_rows(x, c);
        let (g0, g1, g2, g3) = four_rows(dy, c);
        for i in 0..c {
            let m = mean[i];
            let (g0, g1, g2, g3) = (
                f64::from(g0[i]),
                f64::from(g1[i]),
                f64::from(g2[i]),
                f64::from(g3[i]),
            );
            let (d0, d1) = (f64::from(x0[i] - m), f64::from(x1[i] - m));
            let (d2, d3) = (f64::from(x2[i] - m), f64::from(x3[i] - m));
            s1[i] += (g0 + g1) + (g2 + g3);
            s2[i] += (g0 * d0 + g1 * d1) + (g2 * d2 + g3 * d3);
        }
    }
    let tail = x.len() / (4 * c) * 4 * c;
    for (x, dy) in x[tail..].chunks_exact(c).zip(dy[tail..].chunks_exact(c)) {
        let (x, dy) = (&x[..c], &dy[..c]);
        for i in 0..c {
            let g = f64::from(dy[i]);
            s1[i] += g;
            s2[i] += g * f64::from(x[i] - mean[i]);
        }
    }
}

/// `y = (x - mean) * invstd * gamma + beta` over rows of `c` values, `stats` being the
/// mean, invstd, gamma and beta of each channel.
#[inline(always)]
fn normalize_rows(y: &mut [f32], x: &[f32], stats: [&[f32]; 4]) {
    let [mean, invstd, gamma, beta] = stats;
    let c = mean.len();
    let (invstd, gamma, beta) = (&invstd[..c], &gamma[..c], &beta[..c]);
    for (y, x) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        let (y, x) = (&mut y[..c], &x[..c]);
        for i in 0..c {
            y[i] = (x[i] - mean[i]) * invstd[i] * gamma[i] + beta[i];
        }
    }
}

/// `dx = dy * k_dy + k_c + (x - mean) * k_x` (training) or `dy * k_dy` (inference),
/// written or added, over rows of `c` values.
#[inline(always)]
fn input_grad_rows<const TRAINING: bool, const ACCUMULATE: bool>(
    dx: &mut [f32],
    x: &[f32],
    dy: &[f32],
    mean: &[f32],
    k: [&[f32]; 3],
) {
    let c = mean.len();
    let [k_dy, k_x, k_c] = k;
    for ((dxr, xr), dyr) in dx
        .chunks_exact_mut(c)
        .zip(x.chunks_exact(c))
        .zip(dy.chunks_exact(c))
    {
        let lanes = dxr.iter_mut().zip(xr).zip(dyr).zip(mean);
        for ((((d, &x), &g), &m), ((&a, &kx), &kc)) in lanes.zip(k_dy.iter().zip(k_x).zip(k_c)) {
            let v = if TRAINING {
                (g * a + kc) + (x - m) * kx
            } else {
                g * a
            };
            *d = if ACCUMULATE { *d + v } else { v };
        }
    }
}

impl Cpu {
    /// Per-channel sums over all rows: band `t` of the rows sums
    /// `term(rows, s1, s2)` into its own partials (`s1` and `s2` start at zero), then
    /// the bands are added in order. Returns `(s1, s2)`.
    fn channel_sums<'w>(
        &self,
        p: &BatchNormParams,
        partials: &'w mut [f64],
        term: impl Fn(Range<usize>, &mut [f64], &mut [f64]) + Sync,
    ) -> (&'w [f64], &'w [f64]) {
        let (rows, c) = (us(p.rows), us(p.channels));
        let bands = self.threads().min(p.len().div_ceil(MIN_TASK)).max(1);
        let (band, slot) = (rows.div_ceil(bands), slot_len(c));
        let partials = &mut partials[..slot * bands];
        let base = SendPtr(partials.as_mut_ptr());
        self.inner().pool.run(bands, &|t, _| {
            // SAFETY: task `t` takes only the first `2 * c` values of its own slot of
            // `partials`, which is exclusively borrowed for the duration of `run`.
            let mine = unsafe { std::slice::from_raw_parts_mut(base.get().add(t * slot), 2 * c) };
            mine.fill(0.0);
            let (s1, s2) = mine.split_at_mut(c);
            let start = (t * band).min(rows);
            term(start..(start + band).min(rows), s1, s2);
        });
        let (total, rest) = partials.split_at_mut(slot);
        let total = &mut total[..2 * c];
        for part in rest.chunks_exact(slot) {
            for (t, v) in total.iter_mut().zip(part) {
                *t += v;
            }
        }
        total.split_at(c)
    }

    /// Rows a task of an element-wise pass covers, times the channels.
    fn batch_norm_chunk(&self, p: &BatchNormParams) -> usize {
        let c = us(p.channels).max(1);
        self.chunk_for(us(p.rows), MIN_TASK.div_ceil(c)) * c
    }

    /// `y = act((x - mean) * invstd * gamma + beta)` with `saved` the means, then the
    /// `invstd`s (all slices at least as long as `p` needs).
    fn batch_norm_normalize(
        &self,
        p: &BatchNormParams,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        saved: &[f32],
        y: &mut [f32],
    ) {
        let c = us(p.channels);
        let (mean, invstd) = saved[..2 * c].split_at(c);
        let (gamma, beta) = (&gamma[..c], &beta[..c]);
        let block = BLOCK.div_ceil(c) * c;
        let chunk = self.batch_norm_chunk(p);
        self.par_chunks_mut(&mut y[..p.len()], chunk, |t, part| {
            let x = &x[t * chunk..t * chunk + part.len()];
            for (ys, xs) in part.chunks_mut(block).zip(x.chunks(block)) {
                vectorised(|| normalize_rows(ys, xs, [mean, invstd, gamma, beta]));
                forward_elementwise(p.activation, p.negative_slope, ys);
            }
        });
    }
}

impl BatchNormKernel for Cpu {
    fn batch_norm_workspace_len(&self, p: &BatchNormParams) -> usize {
        // The backward's coefficients; up to a cache line less one f32 to align the
        // partials, two f32 a partial sum.
        let c = us(p.channels);
        3 * c + (2 * LINE - 1) + 2 * slot_len(c) * self.threads()
    }

    fn batch_norm_fwd_train(
        &self,
        p: &BatchNormParams,
        x: &CpuBuffer,
        gamma: &CpuBuffer,
        beta: &CpuBuffer,
        running_mean: &mut CpuBuffer,
        running_var: &mut CpuBuffer,
        saved: &mut CpuBuffer,
        y: &mut CpuBuffer,
        ws: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "batch_norm_fwd_train";
        let operands = [x, gamma, beta, &*running_mean, &*running_var, &*saved, &*y];
        p.check_forward(self, OP, true, operands, Some(&*ws))?;
        if p.is_empty() {
            return Ok(());
        }
        let (n, c) = (p.len(), us(p.channels));
        let x = &x.as_slice()[..n];
        let (_, partials) = split_workspace(ws.as_mut_slice(), c, self.threads());
        // Sums of the values less the channel's first one: the variance then comes
        // from sums of the size of the spread, not of the mean.
        let first = &x[..c];
        let (s1, s2) = self.channel_sums(p, partials, |rows, s1, s2| {
            let band = &x[rows.start * c..rows.end * c];
            vectorised(|| sums_fwd(band, first, s1, s2));
        });
        let rows = f64::from(p.rows);
        let (momentum, epsilon) = (f64::from(p.momentum), f64::from(p.epsilon));
        let correction = if p.unbiased { rows / (rows - 1.0) } else { 1.0 };
        let (mean, invstd) = saved.as_mut_slice()[..2 * c].split_at_mut(c);
        let run_mean = &mut running_mean.as_mut_slice()[..c];
        let run_var = &mut running_var.as_mut_slice()[..c];
        for i in 0..c {
            let shift = s1[i] / rows;
            let var = s2[i] / rows - shift * shift;
            // Rounding can leave a constant channel's variance just below zero; a NaN
            // stays NaN.
            let var = if var < 0.0 { 0.0 } else { var };
            let m = f64::from(first[i]) + shift;
            mean[i] = m as f32;
            invstd[i] = (1.0 / (var + epsilon).sqrt()) as f32;
            run_mean[i] = (momentum * f64::from(run_mean[i]) + (1.0 - momentum) * m) as f32;
            run_var[i] =
                (momentum * f64::from(run_var[i]) + (1.0 - momentum) * var * correction) as f32;
        }
        self.batch_norm_normalize(
            p,
            x,
            gamma.as_slice(),
            beta.as_slice(),
            saved.as_slice(),
            y.as_mut_slice(),
        );
        Ok(())
    }

    fn batch_norm_fwd_eval(
        &self,
        p: &BatchNormParams,
        x: &CpuBuffer,
        gamma: &CpuBuffer,
        beta: &CpuBuffer,
        running_mean: &CpuBuffer,
        running_var: &CpuBuffer,
        saved: &mut CpuBuffer,
        y: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "batch_norm_fwd_eval";
        let operands = [x, gamma, beta, running_mean, running_var, &*saved, &*y];
        p.check_forward(self, OP, false, operands, None)?;
        let c = us(p.channels);
        let (run_mean, run_var) = (&running_mean.as_slice()[..c], &running_var.as_slice()[..c]);
        let (mean, invstd) = saved.as_mut_slice()[..2 * c].split_at_mut(c);
        mean.copy_from_slice(run_mean);
        for (s, &v) in invstd.iter_mut().zip(run_var) {
            *s = (1.0 / (f64::from(v) + f64::from(p.epsilon)).sqrt()) as f32;
        }
        self.batch_norm_normalize(
            p,
            x.as_slice(),
            gamma.as_slice(),
            beta.as_slice(),
            saved.as_slice(),
            y.as_mut_slice(),
        );
        Ok(())
    }

    fn batch_norm_bwd(
        &self,
        p: &BatchNormParams,
        training: bool,
        x: &CpuBuffer,
        dy: &CpuBuffer,
        saved: &CpuBuffer,
        gamma: &CpuBuffer,
        dgamma: &mut CpuBuffer,
        dbeta: &mut CpuBuffer,
        dx: Option<InputGrad<'_, CpuBuffer>>,
        ws: &mut CpuBuffer,
    ) -> Result<()> {
        let operands = [x, dy, saved, gamma, &*dgamma, &*dbeta];
        let dx_buffer = dx.as_ref().map(|dx| &*dx.buffer);
        p.check_backward(self, training, operands, dx_buffer, ws)?;
        if p.is_empty() {
            return Ok(());
        }
        let (n, c) = (p.len(), us(p.channels));
        let (x, dy) = (&x.as_slice()[..n], &dy.as_slice()[..n]);
        let (mean, invstd) = saved.as_slice()[..2 * c].split_at(c);
        let (k, partials) = split_workspace(ws.as_mut_slice(), c, self.threads());
        // sum(dy) and sum(dy * (x - mean)), which is sum(dy * xhat) / invstd.
        let (s1, s2) = self.channel_sums(p, partials, |rows, s1, s2| {
            let span = rows.start * c..rows.end * c;
            let (x, dy) = (&x[span.clone()], &dy[span]);
            vectorised(|| sums_bwd(x, dy, mean, s1, s2));
        });
        let rows = f64::from(p.rows);
        let (k_dy, rest) = k.split_at_mut(c);
        let (k_x, k_c) = rest.split_at_mut(c);
        let (dgamma, dbeta) = (
            &mut dgamma.as_mut_slice()[..c],
            &mut dbeta.as_mut_slice()[..c],
        );
        for i in 0..c {
            let invstd = f64::from(invstd[i]);
            let (sum_dy, sum_dy_xhat) = (s1[i], s2[i] * invstd);
            dgamma[i] = (f64::from(dgamma[i]) + sum_dy_xhat) as f32;
            dbeta[i] = (f64::from(dbeta[i]) + sum_dy) as f32;
            let a = f64::from(gamma.as_slice()[i]) * invstd;
            k_dy[i] = a as f32;
            k_x[i] = (-a * invstd * sum_dy_xhat / rows) as f32;
            k_c[i] = (-a * sum_dy / rows) as f32;
        }
        let Some(dx) = dx else {
            return Ok(());
        };
        let k = [&*k_dy, &*k_x, &*k_c];
        let chunk = self.batch_norm_chunk(p);
        let accumulate = dx.accumulate;
        self.par_chunks_mut(&mut dx.buffer.as_mut_slice()[..n], chunk, |t, part| {
            let span = t * chunk..t * chunk + part.len();
            let (x, dy) = (&x[span.clone()], &dy[span]);
            vectorised(|| match (training, accumulate) {
                (true, true) => input_grad_rows::<true, true>(part, x, dy, mean, k),
                (true, false) => input_grad_rows::<true, false>(part, x, dy, mean, k),
                (false, true) => input_grad_rows::<false, true>(part, x, dy, mean, k),
                (false, false) => input_grad_rows::<false, false>(part, x, dy, mean, k),
            });
        });
        Ok(())
    }
}
