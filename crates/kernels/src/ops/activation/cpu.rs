//! Activations on the CPU.

use super::{ActivationKernel, ActivationKind, ActivationParams};
use crate::error::check_len;
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Result};

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
// 1 / sqrt(2 pi)
const INV_SQRT_2PI: f32 = 0.398_942_3;

#[inline]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[inline]
pub(crate) fn forward_scalar(kind: ActivationKind, slope: f32, x: f32) -> f32 {
    match kind {
        ActivationKind::Linear | ActivationKind::Softmax => x,
        ActivationKind::Relu => x.max(0.0),
        ActivationKind::LeakyRelu => {
            if x >= 0.0 {
                x
            } else {
                slope * x
            }
        }
        ActivationKind::Sigmoid => sigmoid(x),
        ActivationKind::Tanh => x.tanh(),
        ActivationKind::Gelu => 0.5 * x * (1.0 + libm::erff(x * FRAC_1_SQRT_2)),
    }
}

/// `f'(x)` given `x` and `y = f(x)`.
#[inline]
fn derivative(kind: ActivationKind, slope: f32, x: f32, y: f32) -> f32 {
    match kind {
        ActivationKind::Linear | ActivationKind::Softmax => 1.0,
        ActivationKind::Relu => {
            if y > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        ActivationKind::LeakyRelu => {
            // y has the sign of x for a positive slope; x is the same buffer otherwise.
            if y > 0.0 || (y == 0.0 && x > 0.0) {
                1.0
            } else {
                slope
            }
        }
        ActivationKind::Sigmoid => y * (1.0 - y),
        ActivationKind::Tanh => 1.0 - y * y,
        ActivationKind::Gelu => {
            let cdf = 0.5 * (1.0 + libm::erff(x * FRAC_1_SQRT_2));
            cdf + x * INV_SQRT_2PI * (-0.5 * x * x).exp()
        }
    }
}

/// `v = f(v)` over a slice; with the function chosen outside the loop, each arm
/// compiles to its own (vectorised, for the simple ones) loop.
#[inline(always)]
fn map(part: &mut [f32], f: impl Fn(f32) -> f32) {
    for v in part {
        *v = f(*v);
    }
}

pub(crate) fn forward_elementwise(kind: ActivationKind, slope: f32, part: &mut [f32]) {
    match kind {
        ActivationKind::Linear | ActivationKind::Softmax => {}
        // `x < 0` is false for NaN, which therefore propagates, as in PyTorch.
        ActivationKind::Relu => map(part, |x| if x < 0.0 { 0.0 } else { x }),
        ActivationKind::LeakyRelu => map(part, |x| if x < 0.0 { slope * x } else { x }),
        ActivationKind::Sigmoid => map(part, sigmoid),
        ActivationKind::Tanh => map(part, f32::tanh),
        ActivationKind::Gelu => map(part, |x| forward_scalar(ActivationKind::Gelu, 0.0, x)),
    }
}

/// `g *= f'(x)` with `y = f(x)`, the function chosen outside the loop.
fn backward_elementwise(kind: ActivationKind, slope: f32, xs: &[f32], ys: &[f32], g: &mut [f32]) {
    #[inline(always)]
    fn zip3(g: &mut [f32], xs: &[f32], ys: &[f32], f: impl Fn(f32, f32, f32) -> f32) {
        for ((g, &x), &y) in g.iter_mut().zip(xs).zip(ys) {
            *g = f(*g, x, y);
        }
    }
    match kind {
        ActivationKind::Linear | ActivationKind::Softmax => {}
        ActivationKind::Relu => zip3(g, xs, ys, |g, _, y| if y > 0.0 { g } else { 0.0 }),
        _ => zip3(g, xs, ys, |g, x, y| g * derivative(kind, slope, x, y)),
    }
}

fn softmax_rows(out: &mut [f32], cols: usize) {
    for row in out.chunks_exact_mut(cols) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

impl Cpu {
    fn activation_apply(&self, p: &ActivationParams, y: &mut [f32]) {
        let (rows, cols) = (us(p.rows), us(p.cols));
        let (kind, slope) = (p.kind, p.negative_slope);
        if kind == ActivationKind::Linear {
            return;
        }
        let chunk = self.chunk_for(rows, 16) * cols;
        self.par_chunks_mut(y, chunk, |_, part| {
            if kind == ActivationKind::Softmax {
                softmax_rows(part, cols);
            } else {
                forward_elementwise(kind, slope, part);
            }
        });
    }
}

impl ActivationKernel for Cpu {
    fn activation_fwd(&self, p: &ActivationParams, x: &CpuBuffer, y: &mut CpuBuffer) -> Result<()> {
        check_len("activation_fwd", "x", p.len(), x.as_slice().len())?;
        check_len("activation_fwd", "y", p.len(), y.as_slice().len())?;
        let y = &mut y.as_mut_slice()[..p.len()];
        y.copy_from_slice(&x.as_slice()[..p.len()]);
        self.activation_apply(p, y);
        Ok(())
    }

    fn activation_fwd_inplace(&self, p: &ActivationParams, y: &mut CpuBuffer) -> Result<()> {
        check_len("activation_fwd", "y", p.len(), y.as_slice().len())?;
        self.activation_apply(p, &mut y.as_mut_slice()[..p.len()]);
        Ok(())
    }

    fn activation_bwd(
        &self,
        p: &ActivationParams,
        x: &CpuBuffer,
        y: &CpuBuffer,
        grad: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "activation_bwd";
        let len = p.len();
        check_len(OP, "x", len, x.as_slice().len())?;
        check_len(OP, "y", len, y.as_slice().len())?;
        check_len(OP, "grad", len, grad.as_slice().len())?;
        let (rows, cols) = (us(p.rows), us(p.cols));
        let (kind, slope) = (p.kind, p.negative_slope);
        if kind == ActivationKind::Linear {
            return Ok(());
        }
        let (xs, ys) = (&x.as_slice()[..len], &y.as_slice()[..len]);
        let chunk = self.chunk_for(rows, 16) * cols;
        self.par_chunks_mut(&mut grad.as_mut_slice()[..len], chunk, |t, g| {
            let start = t * chunk;
            let ys = &ys[start..start + g.len()];
            if kind == ActivationKind::Softmax {
                for (g, y) in g.chunks_exact_mut(cols).zip(ys.chunks_exact(cols)) {
                    let dot: f32 = g.iter().zip(y).map(|(g, y)| g * y).sum();
                    for (g, y) in g.iter_mut().zip(y) {
                        *g = y * (*g - dot);
                    }
                }
            } else {
                backward_elementwise(kind, slope, &xs[start..start + g.len()], ys, g);
            }
        });
        Ok(())
    }
}
