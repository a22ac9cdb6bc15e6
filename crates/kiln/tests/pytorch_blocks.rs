//! A model of residual and concatenated blocks against the same network built with
//! `torch.nn`: its output, its input's gradient and every parameter's gradient.
//!
//! The expected values come from `oracle/pytorch_blocks.py` (kept beside the generated
//! `oracle/pytorch_blocks.rs`), which sets the same weights (a formula of each
//! tensor's place), converts kiln's layouts (NHWC, `[kh, kw, in, out]` kernels,
//! `[in, units]` dense weights) and TensorFlow's `same` padding, and back-propagates
//! `sum(y * u)`. `mix`'s input feeds three consumers and each residual block's input
//! two, so their gradients are sums.

// The harness is shared by the test below; a failing call fails the test.
#![allow(clippy::unwrap_used)]

// Nine significant digits round-trip every f32 exactly.
#[allow(clippy::excessive_precision)]
#[path = "oracle/pytorch_blocks.rs"]
mod expected;

use kiln::prelude::*;

kiln::model! {
    /// Residual blocks with identity and projection shortcuts, and a concatenation
    /// whose input feeds three branches.
    struct TorchBlocks {
        input: [8, 8, 3],
        stem: Conv2d(4, 3, padding = same, activation = relu),
        res1: Residual(activation = relu) {
            a: Conv2d(4, 3, padding = same, activation = relu),
            b: Conv2d(4, 3, padding = same),
        },
        res2: Residual(activation = relu) {
            a: Conv2d(6, 3, stride = 2, padding = same, activation = relu),
            b: Conv2d(6, 3, padding = same),
            shortcut: Conv2d(6, 1, stride = 2),
        },
        mix: Concat {
            one: Conv2d(2, 1),
            three: Conv2d(2, 3, padding = same, activation = relu),
            skip: Identity,
        },
        gap: GlobalAvgPool2d,
        out: Dense(5),
    }
}

/// The script's data: `f(0.37 i + salt) * scale`, in f64, then f32.
fn data(len: usize, salt: f64, f: fn(f64) -> f64) -> Vec<f32> {
    (0..len)
        .map(|i| (f(0.37 * i as f64 + salt) * 0.9) as f32)
        .collect()
}

/// The script's `t`-th parameter tensor: `cos(0.23 i + 2 + t) * 0.5`.
fn param(len: usize, t: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((0.23 * i as f64 + 2.0 + t as f64).cos() * 0.5) as f32)
        .collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{what}[{i}]: kiln {g}, PyTorch {w}"
        );
    }
}

#[test]
fn outputs_and_gradients_match_pytorch() {
    let cpu = Cpu::with_threads(2).unwrap();
    let mut model = TorchBlocks::new(&cpu, 2, 0).unwrap();
    let mut t = 0;
    model
        .visit_parameters(&mut |p| {
            cpu.upload(&param(p.shape.size(), t), p.value)?;
            t += 1;
            Ok(())
        })
        .unwrap();
    let x = Tensor::<Rank3<8, 8, 3>, Cpu>::from_slice(&cpu, 2, &data(384, 1.0, f64::sin)).unwrap();
    let u = Tensor::<Rank1<5>, Cpu>::from_slice(&cpu, 2, &data(10, 0.5, f64::sin)).unwrap();
    let y = model
        .forward(&x, Mode::Train)
        .unwrap()
        .to_vec(&cpu)
        .unwrap();
    assert_close("output", &y, expected::OUTPUT);

    let mut dx = Tensor::<Rank3<8, 8, 3>, Cpu>::zeros(&cpu, 2).unwrap();
    model.zero_grad().unwrap();
    model
        .backward_to_input(&u, GradAt::Output, &mut dx)
        .unwrap();
    assert_close(
        "input gradient",
        &dx.to_vec(&cpu).unwrap(),
        expected::INPUT_GRAD,
    );

    let mut grads = Vec::new();
    model
        .parameters(&mut |p| {
            grads.push((p.key(), cpu.to_host(p.grad, p.shape.size())?));
            Ok(())
        })
        .unwrap();
    assert_eq!(grads.len(), expected::PARAM_GRADS.len());
    for ((key, got), (name, want)) in grads.iter().zip(expected::PARAM_GRADS) {
        assert_eq!(key, name);
        assert!(
            want.iter().any(|v| *v != 0.0),
            "{name} has no gradient in PyTorch"
        );
        assert_close(name, got, want);
    }
}
