//! Activations: values at known points, derivatives against finite differences.

use kiln_shape::Activation;

use super::*;
use crate::Cpu;

const ALL: [Activation; 7] = [
    Activation::Linear,
    Activation::Relu,
    Activation::LeakyRelu {
        negative_slope: 0.2,
    },
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Gelu,
    Activation::Softmax,
];

fn check<B: ActivationKernel>(backend: &B) {
    let (rows, cols) = (3, 5);
    let x: Vec<f32> = (0..rows * cols)
        .map(|i| (i as f32 * 0.7).sin() * 3.0 + 0.05)
        .collect();
    let xb = backend.alloc_from(&x).unwrap();
    for act in ALL {
        let p = ActivationParams::new(act, rows, cols).unwrap();
        let forward = |x: &[f32]| {
            let xb = backend.alloc_from(x).unwrap();
            let mut yb = backend.alloc(x.len()).unwrap();
            backend.activation_fwd(&p, &xb, &mut yb).unwrap();
            backend.to_host(&yb, x.len()).unwrap()
        };
        let y = forward(&x);
        let mut inplace = backend.alloc_from(&x).unwrap();
        backend.activation_fwd_inplace(&p, &mut inplace).unwrap();
        assert_eq!(backend.to_host(&inplace, x.len()).unwrap(), y);
        // Loss L = sum(y * u) for a fixed u; dL/dx by backward and by central differences.
        let u: Vec<f32> = (0..x.len()).map(|i| (i as f32 * 1.3).cos()).collect();
        let yb = backend.alloc_from(&y).unwrap();
        let mut g = backend.alloc_from(&u).unwrap();
        backend.activation_bwd(&p, &xb, &yb, &mut g).unwrap();
        let g = backend.to_host(&g, x.len()).unwrap();
        let loss = |x: &[f32]| -> f64 {
            forward(x)
                .iter()
                .zip(&u)
                .map(|(y, u)| f64::from(*y) * f64::from(*u))
                .sum()
        };
        let h = 1e-2f32;
        for i in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let numeric = (loss(&xp) - loss(&xm)) / (2.0 * f64::from(h));
            assert!(
                (f64::from(g[i]) - numeric).abs() < 2e-3 * (1.0 + numeric.abs()),
                "{act:?} at {i}: backward {} vs numeric {numeric}",
                g[i]
            );
        }
    }
    // Softmax stays finite at extreme logits.
    let p = ActivationParams::new(Activation::Softmax, 1, 3).unwrap();
    let mut big = backend.alloc_from(&[1000.0, 0.0, -1000.0]).unwrap();
    backend.activation_fwd_inplace(&p, &mut big).unwrap();
    assert_eq!(backend.to_host(&big, 3).unwrap(), [1.0, 0.0, 0.0]);
}

#[test]
fn values_and_derivatives_on_cpu() {
    check(&Cpu::with_threads(2).unwrap());
}

/// Forward and backward of `p` on `backend`: `(y, grad)` for input `x` and output
/// gradient `u`.
#[cfg(feature = "cuda")]
fn forward_backward<B: ActivationKernel>(
    backend: &B,
    p: &ActivationParams,
    x: &[f32],
    u: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let n = x.len();
    let xb = backend.alloc_from(x).unwrap();
    // One spare value: ops work on prefixes.
    let mut yb = backend.alloc(n + 1).unwrap();
    backend.activation_fwd(p, &xb, &mut yb).unwrap();
    let mut gb = backend.alloc_from(u).unwrap();
    backend.activation_bwd(p, &xb, &yb, &mut gb).unwrap();
    (
        backend.to_host(&yb, n).unwrap(),
        backend.to_host(&gb, n).unwrap(),
    )
}

/// The GPU against the CPU, forward and backward, for every function, on rows shorter
/// and longer than a block.
#[cfg(feature = "cuda")]
#[test]
fn cuda_matches_cpu() {
    use crate::cuda::parity::{assert_close, random};
    let Some(gpu) = crate::cuda::test_device() else {
        return;
    };
    let cpu = Cpu::with_threads(2).unwrap();
    for (rows, cols) in [(1, 1), (7, 10), (64, 333), (3, 1000)] {
        let x = random(rows * cols, 1, 4.0);
        let u = random(rows * cols, 2, 1.0);
        for act in ALL {
            let p = ActivationParams::new(act, rows, cols).unwrap();
            let (yc, gc) = forward_backward(&cpu, &p, &x, &u);
            let (yg, gg) = forward_backward(&gpu, &p, &x, &u);
            let what = format!("{act:?} {rows}x{cols}");
            assert_close(&format!("{what} forward"), &yc, &yg, 1e-5, 1e-6);
            assert_close(&format!("{what} backward"), &gc, &gg, 1e-4, 1e-6);
        }
    }
}

#[cfg(feature = "cuda")]
#[test]
fn values_and_derivatives_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        check(&gpu);
    }
}
