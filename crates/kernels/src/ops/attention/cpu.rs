//! Fused attention on the CPU: one task a (sequence, head) on the pool, queries and
//! keys in blocks of `BLOCK`, each block's scores on the task's stack.

use super::{AttentionKernel, AttentionParams};
use crate::cpu::SendPtr;
use crate::error::check_len;
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Result};

/// Query rows and key columns of an attention block.
pub(crate) const BLOCK: usize = 32;

/// Lanes of the dot product's partial sums: eight independent sums let the compiler
/// keep them in one vector register (a single running sum must add in order).
const LANES: usize = 8;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (a8, b8) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (o, v) in y.iter_mut().zip(x) {
        *o += alpha * v;
    }
}

/// Where one (sequence, head)'s values lie: row `t`'s query, key and value start at
/// `row(t) + part * width`, its output at `out(t)`.
#[derive(Clone, Copy)]
struct Head {
    base: usize,
    out_base: usize,
    stats: usize,
    time: usize,
    width: usize,
    d: usize,
    causal: bool,
    scale: f32,
}

impl Head {
    fn of(p: &AttentionParams, task: usize) -> Self {
        let (heads, time, d) = (us(p.heads), us(p.time), us(p.head_dim));
        let (b, h) = (task / heads, task % heads);
        let width = heads * d;
        Self {
            base: b * time * 3 * width + h * d,
            out_base: b * time * width + h * d,
            stats: task * time,
            time,
            width,
            d,
            causal: p.causal != 0,
            scale: p.scale(),
        }
    }

    /// The start of row `t`'s query (`part` 0), key (1) or value (2).
    fn at(&self, t: usize, part: usize) -> usize {
        self.base + t * 3 * self.width + part * self.width
    }

    fn out(&self, t: usize) -> usize {
        self.out_base + t * self.width
    }

    /// The keys query block `q0..q0 + nq` attends to: all, or up to its last row.
    fn key_end(&self, q0: usize, nq: usize) -> usize {
        if self.causal { q0 + nq } else { self.time }
    }

    /// The block's scaled scores, masked ones at minus infinity.
    fn scores(
        &self,
        qkv: &[f32],
        q0: usize,
        nq: usize,
        k0: usize,
        nk: usize,
        s: &mut [[f32; BLOCK]; BLOCK],
    ) {
        let d = self.d;
        for r in 0..nq {
            let q = &qkv[self.at(q0 + r, 0)..][..d];
            for c in 0..nk {
                s[r][c] = if self.causal && k0 + c > q0 + r {
                    f32::NEG_INFINITY
                } else {
                    dot(q, &qkv[self.at(k0 + c, 1)..][..d]) * self.scale
                };
            }
        }
    }
}

impl AttentionKernel for Cpu {
    fn attention_fwd(
        &self,
        p: &AttentionParams,
        qkv: &CpuBuffer,
        o: &mut CpuBuffer,
        lse: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "attention_fwd";
        check_len(OP, "qkv", p.qkv_len(), qkv.as_slice().len())?;
        check_len(OP, "o", p.out_len(), o.as_slice().len())?;
        check_len(OP, "lse", p.stats_len(), lse.as_slice().len())?;
        let qkv = qkv.as_slice();
        let (o, lse) = (
            SendPtr(o.as_mut_slice().as_mut_ptr()),
            SendPtr(lse.as_mut_slice().as_mut_ptr()),
        );
        self.inner()
            .pool
            .run(us(p.batch) * us(p.heads), &|task, _| {
                let hd = Head::of(p, task);
                let d = hd.d;
                let mut s = [[0.0f32; BLOCK]; BLOCK];
                for q0 in (0..hd.time).step_by(BLOCK) {
                    let nq = BLOCK.min(hd.time - q0);
                    let (mut m, mut l) = ([f32::NEG_INFINITY; BLOCK], [0.0f32; BLOCK]);
                    // SAFETY: this task alone writes the head's columns of its sequence's
                    // rows of `o` and its own `time` entries of `lse` (tasks are distinct
                    // (sequence, head) pairs), all inside the checked lengths.
                    let row = |t: usize| unsafe {
                        std::slice::from_raw_parts_mut(o.get().add(hd.out(t)), d)
                    };
                    for r in 0..nq {
                        row(q0 + r).fill(0.0);
                    }
                    for k0 in (0..hd.key_end(q0, nq)).step_by(BLOCK) {
                        let nk = BLOCK.min(hd.key_end(q0, nq) - k0);
                        hd.scores(qkv, q0, nq, k0, nk, &mut s);
                        for r in 0..nq {
                            let block_max =
                                s[r][..nk].iter().copied().fold(f32::NEG_INFINITY, f32::max);
                            let new_max = m[r].max(block_max);
                            if new_max == f32::NEG_INFINITY {
                                continue;
                            }
                            let rescale = (m[r] - new_max).exp();
                            let out = row(q0 + r);
                            if rescale != 1.0 {
                                out.iter_mut().for_each(|v| *v *= rescale);
                            }
                            let mut sum = 0.0;
                            for c in 0..nk {
                                let e = (s[r][c] - new_max).exp();
                                if e != 0.0 {
                                    axpy(e, &qkv[hd.at(k0 + c, 2)..][..d], out);
                                }
                                sum += e;
                            }
                            l[r] = l[r] * rescale + sum;
                            m[r] = new_max;
                        }
                    }
                    for r in 0..nq {
                        let inv = 1.0 / l[r];
                        row(q0 + r).iter_mut().for_each(|v| *v *= inv);
                        // SAFETY: as above: this task's own entry of `lse`.
                        unsafe { *lse.get().add(hd.stats + q0 + r) = m[r] + l[r].ln() };
                    }
                }
            });
        Ok(())
    }

    fn attention_bwd(
        &self,
        p: &AttentionParams,
        qkv: &CpuBuffer,
        o: &CpuBuffer,
        lse: &CpuBuffer,
        d_o: &CpuBuffer,
        delta: &mut CpuBuffer,
        dqkv: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "attention_bwd";
        check_len(OP, "qkv", p.qkv_len(), qkv.as_slice().len())?;
        check_len(OP, "o", p.out_len(), o.as_slice().len())?;
        check_len(OP, "d_o", p.out_len(), d_o.as_slice().len())?;
        check_len(OP, "lse", p.stats_len(), lse.as_slice().len())?;
        check_len(OP, "delta", p.stats_len(), delta.as_slice().len())?;
        check_len(OP, "dqkv", p.qkv_len(), dqkv.as_slice().len())?;
        let (qkv, o, lse, d_o) = (qkv.as_slice(), o.as_slice(), lse.as_slice(), d_o.as_slice());
        let delta = SendPtr(delta.as_mut_slice().as_mut_ptr());
        let dqkv = SendPtr(dqkv.as_mut_slice().as_mut_ptr());
        self.inner()
            .pool
            .run(us(p.batch) * us(p.heads), &|task, _| {
                let hd = Head::of(p, task);
                let d = hd.d;
                // SAFETY: this task alone touches the head's columns of its sequence's
                // rows of `dqkv` and its own `time` entries of `delta` (tasks are
                // distinct (sequence, head) pairs), all inside the checked lengths. The
                // slices a block takes at once are distinct rows or parts.
                let grad = |t: usize, part: usize| unsafe {
                    std::slice::from_raw_parts_mut(dqkv.get().add(hd.at(t, part)), d)
                };
                // SAFETY: as above.
                let delta =
                    unsafe { std::slice::from_raw_parts_mut(delta.get().add(hd.stats), hd.time) };
                for t in 0..hd.time {
                    for part in 0..3 {
                        grad(t, part).fill(0.0);
                    }
                    delta[t] = dot(&d_o[hd.out(t)..][..d], &o[hd.out(t)..][..d]);
                }
                let mut s = [[0.0f32; BLOCK]; BLOCK];
                for q0 in (0..hd.time).step_by(BLOCK) {
                    let nq = BLOCK.min(hd.time - q0);
                    for k0 in (0..hd.key_end(q0, nq)).step_by(BLOCK) {
                        let nk = BLOCK.min(hd.key_end(q0, nq) - k0);
                        hd.scores(qkv, q0, nq, k0, nk, &mut s);
                        for (r, scores) in s.iter().enumerate().take(nq) {
                            let t = q0 + r;
                            let g = &d_o[hd.out(t)..][..d];
                            let q = &qkv[hd.at(t, 0)..][..d];
                            let dq = grad(t, 0);
                            for (c, &score) in scores.iter().enumerate().take(nk) {
                                let pr = (score - lse[hd.stats + t]).exp();
                                if pr == 0.0 {
                                    continue;
                                }
                                let key = k0 + c;
                                axpy(pr, g, grad(key, 2));
                                let dp = dot(g, &qkv[hd.at(key, 2)..][..d]);
                                let ds = pr * (dp - delta[t]) * hd.scale;
                                axpy(ds, &qkv[hd.at(key, 1)..][..d], dq);
                                axpy(ds, q, grad(key, 1));
                            }
                        }
                    }
                }
            });
        Ok(())
    }
}
