//! Optimizer updates on the CPU: the tensor is cut into chunks, one task each; every
//! task walks its slice of the parameter, the gradient and each state slot once.
//! On x86-64 with AVX2 the same code is compiled a second time for eight-wide vectors
//! (no FMA contraction, so both builds round alike).

use super::{
    FLAG_AMSGRAD, FLAG_CENTERED, FLAG_NESTEROV, OptimizerKernel, OptimizerKind, OptimizerParams,
};
use crate::cpu::SendPtr;
use crate::error::check_len;
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Result};

/// The slices one task updates: the parameter, its gradient and up to three state
/// slots (unused ones empty).
struct Part<'a> {
    param: &'a mut [f32],
    grad: &'a [f32],
    s0: &'a mut [f32],
    s1: &'a mut [f32],
    s2: &'a mut [f32],
}

/// The gradient after scaling, clamping and coupled decay.
#[inline(always)]
fn prepared(p: &OptimizerParams, g: f32, w: f32) -> f32 {
    // Comparisons rather than `f32::clamp`: NaN passes through (for the caller's
    // non-finite checks to see), and the loop has no panic path to keep it scalar.
    let (g, bound) = (g * p.grad_scale, p.clip_value);
    let g = if g > bound {
        bound
    } else if g < -bound {
        -bound
    } else {
        g
    };
    if p.weight_decay != 0.0 {
        g + p.weight_decay * w
    } else {
        g
    }
}

/// `a + weight * (b - a)` for weights below one half, as `torch.lerp`.
#[inline(always)]
fn lerp(a: f32, b: f32, weight: f32) -> f32 {
    if weight < 0.5 {
        a + weight * (b - a)
    } else {
        b - (b - a) * (1.0 - weight)
    }
}

#[inline(always)]
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

#[inline(always)]
fn update(p: &OptimizerParams, part: Part<'_>) {
    let Part {
        param,
        grad,
        s0,
        s1,
        s2,
    } = part;
    let decay = p.decay;
    if decay != 1.0 {
        for w in param.iter_mut() {
            *w *= decay;
        }
    }
    let neg_lr = -p.lr;
    match p.kind {
        OptimizerKind::Sgd => {
            if p.momentum == 0.0 {
                for (w, &g) in param.iter_mut().zip(grad) {
                    *w += neg_lr * prepared(p, g, *w);
                }
            } else {
                let nesterov = p.has(FLAG_NESTEROV);
                for ((w, &g), buf) in param.iter_mut().zip(grad).zip(s0.iter_mut()) {
                    let g = prepared(p, g, *w);
                    *buf = *buf * p.momentum + g;
                    let step = if nesterov {
                        g + p.momentum * *buf
                    } else {
                        *buf
                    };
                    *w += neg_lr * step;
                }
            }
        }
        OptimizerKind::Adam => {
            let (w1, b2, c2) = (p.one_minus_beta1, p.beta2, p.one_minus_beta2);
            // A multiplication by the reciprocal of `sqrt(1 - beta2^t)` instead of
            // PyTorch's division: one division less an element, at most an ulp apart.
            let (inv_bc2_sqrt, step, eps) = (1.0 / p.coef1, p.coef2, p.eps);
            if p.has(FLAG_AMSGRAD) {
                let moments = s0.iter_mut().zip(s1.iter_mut()).zip(s2.iter_mut());
                for ((w, &g), ((m, v), vmax)) in param.iter_mut().zip(grad).zip(moments) {
                    let g = prepared(p, g, *w);
                    *m = lerp(*m, g, w1);
                    *v = *v * b2 + c2 * g * g;
                    *vmax = vmax.max(*v);
                    *w += step * *m / (vmax.sqrt() * inv_bc2_sqrt + eps);
                }
            } else {
                let moments = s0.iter_mut().zip(s1.iter_mut());
                for ((w, &g), (m, v)) in param.iter_mut().zip(grad).zip(moments) {
                    let g = prepared(p, g, *w);
                    *m = lerp(*m, g, w1);
                    *v = *v * b2 + c2 * g * g;
                    *w += step * *m / (v.sqrt() * inv_bc2_sqrt + eps);
                }
            }
        }
        OptimizerKind::RmsProp => {
            let (with_momentum, centered) = (p.momentum > 0.0, p.has(FLAG_CENTERED));
            let (buf, grad_avg) = if with_momentum { (s1, s2) } else { (s2, s1) };
            for (i, (w, &g)) in param.iter_mut().zip(grad).enumerate() {
                let g = prepared(p, g, *w);
                let sq = s0[i] * p.beta2 + p.one_minus_beta2 * g * g;
                s0[i] = sq;
                let avg = if centered {
                    let ga = lerp(grad_avg[i], g, p.one_minus_beta2);
                    grad_avg[i] = ga;
                    (sq + -ga * ga).sqrt()
                } else {
                    sq.sqrt()
                } + p.eps;
                if with_momentum {
                    let b = buf[i] * p.momentum + g / avg;
                    buf[i] = b;
                    *w += neg_lr * b;
                } else {
                    *w += neg_lr * g / avg;
                }
            }
        }
        OptimizerKind::Adagrad => {
            for ((w, &g), sum) in param.iter_mut().zip(grad).zip(s0.iter_mut()) {
                let g = prepared(p, g, *w);
                *sum += g * g;
                *w += neg_lr * g / (sum.sqrt() + p.eps);
            }
        }
        OptimizerKind::Nadam => {
            let (w1, b2, c2) = (p.one_minus_beta1, p.beta2, p.one_minus_beta2);
            let moments = s0.iter_mut().zip(s1.iter_mut());
            for ((w, &g), (m, v)) in param.iter_mut().zip(grad).zip(moments) {
                let g = prepared(p, g, *w);
                *m = lerp(*m, g, w1);
                *v = *v * b2 + c2 * g * g;
                let denom = (*v / p.coef1).sqrt() + p.eps;
                *w += p.coef2 * g / denom;
                *w += p.coef3 * *m / denom;
            }
        }
        OptimizerKind::Lion => {
            for ((w, &g), m) in param.iter_mut().zip(grad).zip(s0.iter_mut()) {
                let g = prepared(p, g, *w);
                let c = *m * p.beta1 + g * p.one_minus_beta1;
                *w += neg_lr * sign(c);
                *m = *m * p.beta2 + g * p.one_minus_beta2;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn update_avx2(p: &OptimizerParams, part: Part<'_>) {
    update(p, part);
}

fn update_dispatch(p: &OptimizerParams, part: Part<'_>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { update_avx2(p, part) };
        return;
    }
    update(p, part);
}

impl OptimizerKernel for Cpu {
    fn optimizer_step(
        &self,
        p: &OptimizerParams,
        param: &mut CpuBuffer,
        grad: &CpuBuffer,
        state: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "optimizer_step";
        let len = us(p.len);
        let slots = p.slots();
        check_len(OP, "param", len, param.as_slice().len())?;
        check_len(OP, "grad", len, grad.as_slice().len())?;
        check_len(OP, "state", slots * len, state.as_slice().len())?;
        let grad = &grad.as_slice()[..len];
        let state = SendPtr(state.as_mut_slice().as_mut_ptr());
        let chunk = self.chunk_for(len, 16_384);
        self.par_chunks_mut(&mut param.as_mut_slice()[..len], chunk, |t, part| {
            let (start, n) = (t * chunk, part.len());
            let slot = |s: usize| -> &mut [f32] {
                if s < slots {
                    // SAFETY: slot `s` occupies `state[s * len..(s + 1) * len]`, which
                    // the length check above guarantees; each task takes the disjoint
                    // range `start..start + n` of it, and `state` is exclusively
                    // borrowed until `par_chunks_mut` returns.
                    unsafe { std::slice::from_raw_parts_mut(state.get().add(s * len + start), n) }
                } else {
                    &mut []
                }
            };
            update_dispatch(
                p,
                Part {
                    param: part,
                    grad: &grad[start..start + n],
                    s0: slot(0),
                    s1: slot(1),
                    s2: slot(2),
                },
            );
        });
        Ok(())
    }
}
