//! The sum: every fusable activation against direct loops, in place and out of place,
//! its backward against finite differences, and its errors.

use kiln_shape::Activation;

use super::*;
use crate::ops::activation::{ActivationKernel, ActivationParams};
use crate::rng::Rng;
use crate::{Cpu, Error};

/// Every activation that fuses into the sum, leaky ReLU with a slope other than 0.01
/// so that a slope left out would show.
const FUSED: [Activation; 5] = [
    Activation::Linear,
    Activation::Relu,
    Activation::LeakyRelu {
        negative_slope: 0.25,
    },
    Activation::Sigmoid,
    Activation::Tanh,
];

/// Lengths around the vector widths, the CPU's block of 1,024 and its threads' chunks.
const LENS: [usize; 10] = [0, 1, 7, 8, 9, 33, 1_023, 1_025, 20_001, 70_001];

fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.uniform_in(-scale, scale)).collect()
}

/// `act(v)`, written out: exact for the piecewise-linear kinds, in `f64` otherwise.
fn direct(act: Activation, v: f32) -> f64 {
    let x = f64::from(v);
    match act {
        Activation::Linear => x,
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu { negative_slope } => {
            if v < 0.0 {
                f64::from(negative_slope * v)
            } else {
                x
            }
        }
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
        Activation::Gelu | Activation::Softmax => unreachable!("not fused"),
    }
}

/// `got` against `act(a + b)`: bit for bit where the activation is piecewise linear.
fn assert_direct(what: &str, act: Activation, a: &[f32], b: &[f32], got: &[f32]) {
    let exact = matches!(
        act,
        Activation::Linear | Activation::Relu | Activation::LeakyRelu { .. }
    );
    for (i, ((&a, &b), &got)) in a.iter().zip(b).zip(got).enumerate() {
        let want = direct(act, a + b);
        let ok = if exact {
            f64::from(got) == want
        } else {
            (f64::from(got) - want).abs() <= 1e-6 * (1.0 + want.abs())
        };
        assert!(
            ok,
            "{what} {act:?} [{i}]: {a} + {b} gave {got}, want {want}"
        );
    }
}

fn check<B: AddKernel>(backend: &B) {
    const SPARE: usize = 5;
    for len in LENS {
        let a = values(len, 1 + len as u64, 3.0);
        let b = values(len, 2 + len as u64, 3.0);
        let (ab, bb) = (
            backend.alloc_from(&a).unwrap(),
            backend.alloc_from(&b).unwrap(),
        );
        for act in FUSED {
            let p = AddParams::new(act, len).unwrap();
            // Spare values past the end: ops work on prefixes and must leave them.
            let mut y = backend.alloc_from(&vec![7.0; len + SPARE]).unwrap();
            backend.add_fwd(&p, &ab, &bb, &mut y).unwrap();
            let y = backend.to_host(&y, len + SPARE).unwrap();
            assert_direct(&format!("add_fwd {len}"), act, &a, &b, &y[..len]);
            assert_eq!(
                y[len..],
                [7.0; SPARE],
                "add_fwd {len} {act:?}: past the end"
            );
            let mut inplace = backend
                .alloc_from(&[&b[..], &[7.0; SPARE]].concat())
                .unwrap();
            backend.add_fwd_inplace(&p, &ab, &mut inplace).unwrap();
            let inplace = backend.to_host(&inplace, len + SPARE).unwrap();
            assert_eq!(inplace, y, "add_fwd_inplace {len} {act:?}");
        }
    }
    // NaN propagates through the ReLU, as in PyTorch.
    let p = AddParams::new(Activation::Relu, 2).unwrap();
    let a = backend.alloc_from(&[f32::NAN, -1.0]).unwrap();
    let mut y = backend.alloc_from(&[1.0, 0.5]).unwrap();
    backend.add_fwd_inplace(&p, &a, &mut y).unwrap();
    let y = backend.to_host(&y, 2).unwrap();
    assert!(y[0].is_nan() && y[1] == 0.0, "{y:?}");
}

/// The backward the module documents: the output gradient to both inputs, through
/// `activation_bwd` from the output; against central differences of
/// `L = sum(u * act(a + b))` in each input.
fn check_backward<B: AddKernel + ActivationKernel>(backend: &B) {
    let n = 40;
    // Sums at least 0.1 away from ReLU's kink, farther than the step.
    let a: Vec<f32> = (0..n)
        .map(|i| (i as f32 * 0.9).sin() * 2.0 + if i % 2 == 0 { 0.6 } else { -0.6 })
        .collect();
    let b: Vec<f32> = a.iter().map(|v| v.signum() * 0.1 - v * 0.3).collect();
    let u = values(n, 9, 1.0);
    for act in FUSED {
        let p = AddParams::new(act, n).unwrap();
        let forward = |a: &[f32], b: &[f32]| {
            let (ab, bb) = (
                backend.alloc_from(a).unwrap(),
                backend.alloc_from(b).unwrap(),
            );
            let mut y = backend.alloc(n).unwrap();
            backend.add_fwd(&p, &ab, &bb, &mut y).unwrap();
            (backend.to_host(&y, n).unwrap(), y)
        };
        let (_, y) = forward(&a, &b);
        let mut g = backend.alloc_from(&u).unwrap();
        let q = ActivationParams::new(act, 1, n).unwrap();
        backend.activation_bwd(&q, &y, &y, &mut g).unwrap();
        let g = backend.to_host(&g, n).unwrap();
        let loss = |a: &[f32], b: &[f32]| -> f64 {
            let (y, _) = forward(a, b);
            y.iter()
                .zip(&u)
                .map(|(y, u)| f64::from(*y) * f64::from(*u))
                .sum()
        };
        let h = 1e-2f32;
        for i in 0..n {
            for input in 0..2 {
                let (mut ap, mut bp) = (a.clone(), b.clone());
                let (mut am, mut bm) = (a.clone(), b.clone());
                let (plus, minus) = if input == 0 {
                    (&mut ap[i], &mut am[i])
                } else {
                    (&mut bp[i], &mut bm[i])
                };
                *plus += h;
                *minus -= h;
                let numeric = (loss(&ap, &bp) - loss(&am, &bm)) / (2.0 * f64::from(h));
                assert!(
                    (f64::from(g[i]) - numeric).abs() < 2e-3 * (1.0 + numeric.abs()),
                    "{act:?} input {input} at {i}: backward {} vs numeric {numeric}",
                    g[i]
                );
            }
        }
    }
}

fn check_errors<B: AddKernel>(backend: &B) {
    let p = AddParams::new(Activation::Relu, 4).unwrap();
    let (four, three) = (backend.alloc(4).unwrap(), backend.alloc(3).unwrap());
    let short = |err: Error, operand: &str| match err {
        Error::BufferTooSmall {
            operand: o,
            needed: 4,
            len: 3,
            ..
        } => assert_eq!(o, operand),
        other => panic!("{operand}: {other}"),
    };
    let mut y = backend.alloc(4).unwrap();
    short(backend.add_fwd(&p, &three, &four, &mut y).unwrap_err(), "a");
    short(backend.add_fwd(&p, &four, &three, &mut y).unwrap_err(), "b");
    short(
        backend.add_fwd_inplace(&p, &three, &mut y).unwrap_err(),
        "a",
    );
    let mut y = backend.alloc(3).unwrap();
    short(backend.add_fwd(&p, &four, &four, &mut y).unwrap_err(), "y");
    short(backend.add_fwd_inplace(&p, &four, &mut y).unwrap_err(), "y");
    // Parameters written by hand are checked by the op too.
    let gelu = AddParams {
        activation: ActivationKind::Gelu,
        ..p
    };
    let mut y = backend.alloc(4).unwrap();
    for err in [
        backend.add_fwd(&gelu, &four, &four, &mut y).unwrap_err(),
        backend.add_fwd_inplace(&gelu, &four, &mut y).unwrap_err(),
    ] {
        assert!(
            matches!(err, Error::InvalidParams { .. }) && err.to_string().contains("Gelu"),
            "{err}"
        );
    }
}

#[test]
fn refuses_activations_that_do_not_fuse_and_lengths_past_32_bits() {
    for (act, name) in [(Activation::Gelu, "Gelu"), (Activation::Softmax, "Softmax")] {
        let err = AddParams::new(act, 8).unwrap_err();
        assert!(
            matches!(err, Error::InvalidParams { op: "add", .. }) && err.to_string().contains(name),
            "{err}"
        );
    }
    let err = AddParams::new(Activation::Linear, u32::MAX as usize + 1).unwrap_err();
    assert!(err.to_string().contains("32 bits"), "{err}");
    let p = AddParams::new(
        Activation::LeakyRelu {
            negative_slope: 0.3,
        },
        5,
    )
    .unwrap();
    assert_eq!(
        (p.len, p.activation, p.negative_slope),
        (5, ActivationKind::LeakyRelu, 0.3)
    );
}

#[test]
fn sums_and_activates_as_direct_loops_on_cpu() {
    check(&Cpu::with_threads(2).unwrap());
}

#[test]
fn the_backward_is_the_activations_from_the_output_on_cpu() {
    check_backward(&Cpu::with_threads(2).unwrap());
}

#[test]
fn short_buffers_and_unfused_activations_are_errors_on_cpu() {
    check_errors(&Cpu::with_threads(2).unwrap());
}

#[cfg(feature = "cuda")]
#[test]
fn sums_activates_and_checks_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        check(&gpu);
        check_backward(&gpu);
        check_errors(&gpu);
    }
}

/// `(act(a + b), act(a + b) in place)` on `backend`.
#[cfg(feature = "cuda")]
fn both_ways<B: AddKernel>(backend: &B, p: &AddParams, a: &[f32], b: &[f32]) -> [Vec<f32>; 2] {
    let (ab, bb) = (
        backend.alloc_from(a).unwrap(),
        backend.alloc_from(b).unwrap(),
    );
    let mut y = backend.alloc(a.len()).unwrap();
    backend.add_fwd(p, &ab, &bb, &mut y).unwrap();
    let mut z = backend.alloc_from(b).unwrap();
    backend.add_fwd_inplace(p, &ab, &mut z).unwrap();
    [
        backend.to_host(&y, a.len()).unwrap(),
        backend.to_host(&z, a.len()).unwrap(),
    ]
}

/// The GPU against the CPU: bit for bit where the activation is piecewise linear (the
/// same additions and products, no contraction); to the last bits of `expf` and `tanhf`
/// otherwise, whose CUDA and host versions differ.
#[cfg(feature = "cuda")]
#[test]
fn cuda_matches_cpu() {
    use crate::cuda::parity::{assert_close, random};
    let Some(gpu) = crate::cuda::test_device() else {
        return;
    };
    let cpu = Cpu::with_threads(2).unwrap();
    for len in [1, 9, 1_025, 300_001] {
        let (a, b) = (random(len, 3, 4.0), random(len, 4, 4.0));
        for act in FUSED {
            let p = AddParams::new(act, len).unwrap();
            let cpu_out = both_ways(&cpu, &p, &a, &b);
            let gpu_out = both_ways(&gpu, &p, &a, &b);
            for (way, (c, g)) in ["add_fwd", "add_fwd_inplace"]
                .iter()
                .zip(cpu_out.iter().zip(&gpu_out))
            {
                let what = format!("{act:?} {len} {way}");
                if matches!(act, Activation::Sigmoid | Activation::Tanh) {
                    assert_close(&what, c, g, 1e-6, 1e-6);
                } else {
                    assert_eq!(c, g, "{what}");
                }
            }
        }
    }
}
