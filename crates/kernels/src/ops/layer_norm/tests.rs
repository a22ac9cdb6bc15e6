//! Layer normalisation on every backend present: values against a direct `f64`
//! computation, gradients against central differences.

use super::*;
use crate::Cpu;

const ROWS: usize = 3;
const COLS: usize = 5;

fn data(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 + seed) * 0.37).sin() * 1.5 + 0.2).collect()
}

/// `sum(w * layer_norm(x))` in `f64`: the scalar whose gradient the backward pass
/// gives when `dy = w`.
fn objective(x: &[f32], gamma: &[f32], beta: &[f32], w: &[f32]) -> (f64, Vec<f64>) {
    let mut y = vec![0.0; x.len()];
    let mut total = 0.0;
    for r in 0..ROWS {
        let row = &x[r * COLS..(r + 1) * COLS];
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / COLS as f64;
        let var = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / COLS as f64;
        let rstd = 1.0 / (var + 1e-5).sqrt();
        for c in 0..COLS {
            let v = (f64::from(row[c]) - mean) * rstd * f64::from(gamma[c]) + f64::from(beta[c]);
            y[r * COLS + c] = v;
            total += v * f64::from(w[r * COLS + c]);
        }
    }
    (total, y)
}

fn check<B: LayerNormKernel>(backend: &B, accumulate: bool) {
    let p = LayerNormParams {
        accumulate: u32::from(accumulate),
        ..LayerNormParams::new(ROWS, COLS).unwrap()
    };
    let (x, gamma, beta, w) = (
        data(ROWS * COLS, 0.0),
        data(COLS, 3.0),
        data(COLS, 7.0),
        data(ROWS * COLS, 11.0),
    );
    let bx = backend.alloc_from(&x).unwrap();
    let (bg, bb) = (backend.alloc_from(&gamma).unwrap(), backend.alloc_from(&beta).unwrap());
    let (mut y, mut stats) = (backend.alloc(ROWS * COLS).unwrap(), backend.alloc(2 * ROWS).unwrap());
    backend.layer_norm_fwd(&p, &bx, &bg, &bb, &mut y, &mut stats).unwrap();
    let (_, want) = objective(&x, &gamma, &beta, &w);
    for (a, b) in backend.to_host(&y, ROWS * COLS).unwrap().iter().zip(&want) {
        assert!((f64::from(*a) - b).abs() < 1e-5, "{a} vs {b}");
    }

    let dy = backend.alloc_from(&w).unwrap();
    let start = if accumulate { 0.5 } else { 9.0 };
    let mut dx = backend.alloc_from(&[start; ROWS * COLS]).unwrap();
    let mut dgamma = backend.alloc_from(&[1.0; COLS]).unwrap();
    let mut dbeta = backend.alloc_from(&[-1.0; COLS]).unwrap();
    backend
        .layer_norm_bwd(&p, &bx, &bg, &stats, &dy, Some(&mut dx), &mut dgamma, &mut dbeta)
        .unwrap();
    let dx = backend.to_host(&dx, ROWS * COLS).unwrap();
    let dgamma = backend.to_host(&dgamma, COLS).unwrap();
    let dbeta = backend.to_host(&dbeta, COLS).unwrap();
    let h = 1e-3f32;
    let diff = |f: &dyn Fn(f32) -> f64| (f(h) - f(-h)) / f64::from(2.0 * h);
    for i in 0..ROWS * COLS {
        let g = diff(&|e| {
            let mut x = x.clone();
            x[i] += e;
            objective(&x, &gamma, &beta, &w).0
        });
        let got = f64::from(dx[i]) - if accumulate { 0.5 } else { 0.0 };
        assert!((got - g).abs() < 2e-3, "dx[{i}]: {got} vs {g}");
    }
    for c in 0..COLS {
        let g = diff(&|e| {
            let mut gm = gamma.clone();
            gm[c] += e;
            objective(&x, &gm, &beta, &w).0
        });
        assert!((f64::from(dgamma[c]) - 1.0 - g).abs() < 2e-3, "dgamma[{c}]");
        let b = diff(&|e| {
            let mut bt = beta.clone();
            bt[c] += e;
            objective(&x, &gamma, &bt, &w).0
        });
        assert!((f64::from(dbeta[c]) + 1.0 - b).abs() < 2e-3, "dbeta[{c}]");
    }
}

#[test]
fn normalises_and_differentiates_on_cpu() {
    for threads in [1, 2] {
        let cpu = Cpu::with_threads(threads).unwrap();
        check(&cpu, false);
        check(&cpu, true);
    }
}

#[cfg(feature = "cuda")]
#[test]
fn normalises_and_differentiates_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        check(&gpu, false);
        check(&gpu, true);
    }
}
