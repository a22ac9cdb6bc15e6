//! Losses on the CPU. A batch of model outputs is small next to the model, so one
//! pass a sample, serial, with `f64` sums for the value.

use super::{LossInput, LossKernel, LossKind, LossParams};
use crate::error::check_len;
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Error, Result};

/// `log(cosh(x))` without overflow.
fn log_cosh(x: f64) -> f64 {
    let a = x.abs();
    a + (-2.0 * a).exp().ln_1p() - std::f64::consts::LN_2
}

/// The smoothed target of class `c` given the raw target `y`.
#[inline]
fn smooth(y: f32, smoothing: f32, share: f32) -> f32 {
    if smoothing == 0.0 {
        y
    } else {
        y * (1.0 - smoothing) + smoothing * share
    }
}

/// One sample's loss (unweighted) and its unscaled gradient in `g`.
fn sample(p: &LossParams, o: &[f32], t: &[f32], label: usize, g: &mut [f32]) -> f64 {
    let f = o.len() as f32;
    let (eps, ls) = (p.epsilon, p.label_smoothing);
    match p.kind {
        LossKind::MeanSquaredError => {
            let mut sum = 0.0f64;
            for ((g, &o), &t) in g.iter_mut().zip(o).zip(t) {
                let d = o - t;
                sum += f64::from(d) * f64::from(d);
                *g = 2.0 * d / f;
            }
            sum / f64::from(f)
        }
        LossKind::MeanAbsoluteError => {
            let mut sum = 0.0f64;
            for ((g, &o), &t) in g.iter_mut().zip(o).zip(t) {
                let d = o - t;
                sum += f64::from(d.abs());
                *g = sign(d) / f;
            }
            sum / f64::from(f)
        }
        LossKind::Huber => {
            let delta = p.delta;
            let mut sum = 0.0f64;
            for ((g, &o), &t) in g.iter_mut().zip(o).zip(t) {
                let d = o - t;
                if d.abs() < delta {
                    sum += 0.5 * f64::from(d) * f64::from(d);
                    *g = d / f;
                } else {
                    sum += f64::from(delta) * (f64::from(d.abs()) - 0.5 * f64::from(delta));
                    *g = delta * sign(d) / f;
                }
            }
            sum / f64::from(f)
        }
        LossKind::LogCosh => {
            let mut sum = 0.0f64;
            for ((g, &o), &t) in g.iter_mut().zip(o).zip(t) {
                let d = o - t;
                sum += log_cosh(f64::from(d));
                *g = d.tanh() / f;
            }
            sum / f64::from(f)
        }
        LossKind::BinaryCrossentropy => {
            let mut sum = 0.0f64;
            for ((g, &o), &t) in g.iter_mut().zip(o).zip(t) {
                let y = smooth(t, ls, 0.5);
                match p.input {
                    LossInput::Logits => {
                        // max(z, 0) - z y + log(1 + exp(-|z|)): no overflow at any z.
                        let z = f64::from(o);
                        sum += z.max(0.0) - z * f64::from(y) + (-z.abs()).exp().ln_1p();
                        *g = (sigmoid(o) - y) / f;
                    }
                    LossInput::Prediction | LossInput::Activated => {
                        let pc = o.clamp(eps, 1.0 - eps);
                        let (pd, yd) = (f64::from(pc), f64::from(y));
                        sum -= yd * pd.ln() + (1.0 - yd) * (1.0 - pd).ln();
                        *g = if p.input == LossInput::Activated {
                            (o - y) / f
                        } else if o > eps && o < 1.0 - eps {
                            (o - y) / (o * (1.0 - o)) / f
                        } else {
                            0.0
                        };
                    }
                }
            }
            sum / f64::from(f)
        }
        LossKind::CategoricalCrossentropy | LossKind::SparseCategoricalCrossentropy => {
            let sparse = p.kind == LossKind::SparseCategoricalCrossentropy;
            let share = 1.0 / f;
            let target = |c: usize| {
                let y = if sparse {
                    if c == label { 1.0 } else { 0.0 }
                } else {
                    t[c]
                };
                smooth(y, ls, share)
            };
            let mut y_sum = 0.0f32;
            let mut loss = 0.0f64;
            match p.input {
                LossInput::Logits => {
                    let max = o.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                    let denom: f64 = o.iter().map(|&z| f64::from(z - max).exp()).sum();
                    let lse = f64::from(max) + denom.ln();
                    for (c, &z) in o.iter().enumerate() {
                        let y = target(c);
                        y_sum += y;
                        if y != 0.0 {
                            loss += f64::from(y) * (lse - f64::from(z));
                        }
                    }
                    for (c, (g, &z)) in g.iter_mut().zip(o).enumerate() {
                        let softmax = (f64::from(z) - lse).exp() as f32;
                        *g = softmax * y_sum - target(c);
                    }
                }
                LossInput::Prediction | LossInput::Activated => {
                    for (c, &pr) in o.iter().enumerate() {
                        let y = target(c);
                        y_sum += y;
                        if y != 0.0 {
                            loss -= f64::from(y) * f64::from(pr.clamp(eps, 1.0 - eps)).ln();
                        }
                    }
                    for (c, (g, &pr)) in g.iter_mut().zip(o).enumerate() {
                        let y = target(c);
                        *g = if p.input == LossInput::Activated {
                            pr * y_sum - y
                        } else if pr > eps && pr < 1.0 - eps {
                            -y / pr
                        } else {
                            0.0
                        };
                    }
                }
            }
            loss
        }
    }
}

/// `sign(x)`, zero at zero (as PyTorch's).
#[inline]
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The first non-finite value of `values`, with its index.
pub(crate) fn first_non_finite(values: &[f32]) -> Option<(usize, f32)> {
    values
        .iter()
        .position(|v| !v.is_finite())
        .map(|i| (i, values[i]))
}

impl LossKernel for Cpu {
    fn loss(
        &self,
        p: &LossParams,
        output: &CpuBuffer,
        target: &CpuBuffer,
        weights: Option<&CpuBuffer>,
        per_sample: &mut CpuBuffer,
        grad: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "loss";
        let (batch, features) = (us(p.batch), us(p.features));
        let n = batch * features;
        check_len(OP, "output", n, output.as_slice().len())?;
        check_len(OP, "target", p.target_len(), target.as_slice().len())?;
        check_len(OP, "per_sample", batch, per_sample.as_slice().len())?;
        check_len(OP, "grad", n, grad.as_slice().len())?;
        if features == 0 {
            return Err(Error::InvalidParams {
                op: OP,
                detail: "a sample needs at least one value".into(),
            });
        }
        let weights = match (p.weighted, weights) {
            (0, _) => None,
            (_, Some(w)) => {
                check_len(OP, "weights", batch, w.as_slice().len())?;
                Some(&w.as_slice()[..batch])
            }
            (_, None) => {
                return Err(Error::InvalidParams {
                    op: OP,
                    detail: "weighted is set but no weight buffer was given".into(),
                });
            }
        };
        let output = &output.as_slice()[..n];
        let target = &target.as_slice()[..p.target_len()];
        if let Some((index, value)) = first_non_finite(output) {
            return Err(Error::NonFinite {
                op: OP,
                operand: "output",
                index,
                value,
            });
        }
        let per_sample = &mut per_sample.as_mut_slice()[..batch];
        let grad = &mut grad.as_mut_slice()[..n];
        for i in 0..batch {
            let rows = i * features..(i + 1) * features;
            let (t, label) = if p.kind.sparse_targets() {
                let v = target[i];
                let label = v as usize;
                if !(v >= 0.0 && v.fract() == 0.0 && label < features) {
                    return Err(Error::InvalidTarget {
                        op: OP,
                        index: i,
                        value: v,
                        classes: features,
                    });
                }
                (&target[..0], label)
            } else {
                (&target[rows.clone()], 0)
            };
            let g = &mut grad[rows.clone()];
            let value = sample(p, &output[rows], t, label, g);
            let w = weights.map_or(1.0, |w| w[i]);
            per_sample[i] = (value * f64::from(w)) as f32;
            let scale = p.grad_scale * w;
            for g in g.iter_mut() {
                *g *= scale;
            }
        }
        Ok(())
    }
}
