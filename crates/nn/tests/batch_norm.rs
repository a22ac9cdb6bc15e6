//! BatchNorm against PyTorch in both conventions (training values and gradients,
//! running statistics after several steps, inference), and its saved state.
//!
//! The expected values come from `oracle/pytorch_batch_norm.py` (kept beside the
//! generated `oracle/pytorch_batch_norm.rs`), which runs `torch.nn.BatchNorm2d` and
//! `BatchNorm1d` on the CPU; for Keras's convention it recomputes the running variance
//! with the biased estimate, as Keras keeps it.

// The harness is shared by the tests below; a failing call fails the test.
#![allow(clippy::unwrap_used)]

// Nine significant digits round-trip every f32 exactly.
#[allow(clippy::excessive_precision)]
#[path = "oracle/pytorch_batch_norm.rs"]
mod expected;

use kiln_kernels::ops::InputGrad;
use kiln_kernels::rng::Rng;
use kiln_kernels::{Cpu, GradAt, Storage};
use kiln_nn::{Backward, BatchNorm, Error, Layer, Mode};
use kiln_shape::{BatchNormSpec, Shape};

const C: usize = 6;

/// The script's inputs: channels that differ in mean and spread.
fn input(len: usize, salt: f64) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let channel = (i % C) as f64;
            ((0.37 * i as f64 + salt).sin() * 0.9 * (1.0 + channel) + 0.5 * channel) as f32
        })
        .collect()
}

fn formula(len: usize, salt: f64, k: f64, scale: f64, f: fn(f64) -> f64) -> Vec<f32> {
    (0..len)
        .map(|i| (f(k * i as f64 + salt) * scale) as f32)
        .collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 2e-5 * (1.0 + w.abs()),
            "{what}[{i}]: kiln {g}, PyTorch {w}"
        );
    }
}

/// Everything the script records, for one convention and shape.
struct Expected {
    out: &'static [f32],
    dx: &'static [f32],
    dweight: &'static [f32],
    dbias: &'static [f32],
    running_mean: &'static [f32],
    running_var: &'static [f32],
    eval_out: &'static [f32],
}

fn check(what: &str, spec: BatchNormSpec, sample: &[usize], batch: usize, want: Expected) {
    let cpu = Cpu::with_threads(2).unwrap();
    let sample = Shape::new(sample);
    let len = batch * sample.size();
    let mut bn = BatchNorm::<Cpu>::build(&cpu, &spec, sample, batch, &mut Rng::new(0)).unwrap();
    bn.visit_parameters("bn", &mut |p| {
        let salt = if p.name == "weight" { 2.0 } else { 3.0 };
        cpu.upload(&formula(C, salt, 0.23, 0.5, f64::cos), p.value)
    })
    .unwrap();
    let u = formula(len, 0.5, 0.37, 0.9, f64::sin);
    let mut y = cpu.alloc(len).unwrap();
    for (step, salt) in [1.0, 2.0, 3.0].into_iter().enumerate() {
        let x = cpu.alloc_from(&input(len, salt)).unwrap();
        bn.forward(&cpu, &x, &mut y, batch, Mode::Train).unwrap();
        if step == 0 {
            assert_close(
                &format!("{what} output"),
                &cpu.to_host(&y, len).unwrap(),
                want.out,
            );
            let mut dy = cpu.alloc_from(&u).unwrap();
            let mut dx = cpu.alloc(len).unwrap();
            bn.zero_grad(&cpu).unwrap();
            let pass = Backward {
                x: Some(&x),
                y: Some(&y),
                dy: &mut dy,
                dx: Some(InputGrad::write(&mut dx)),
                batch,
                at: GradAt::Output,
                through_relu_below: false,
            };
            bn.backward(&cpu, pass).unwrap();
            assert_close(
                &format!("{what} dx"),
                &cpu.to_host(&dx, len).unwrap(),
                want.dx,
            );
            let mut grads = Vec::new();
            bn.parameters("bn", &mut |p| {
                grads.push((p.name, cpu.to_host(p.grad, C)?));
                Ok(())
            })
            .unwrap();
            assert_eq!(grads[0].0, "weight");
            assert_close(&format!("{what} dweight"), &grads[0].1, want.dweight);
            assert_close(&format!("{what} dbias"), &grads[1].1, want.dbias);
        }
    }
    let mut state = Vec::new();
    bn.state("bn", &mut |s| {
        state.push((s.key(), cpu.to_host(s.value, C)?));
        Ok(())
    })
    .unwrap();
    assert_eq!(state[0].0, "bn.running_mean");
    assert_eq!(state[1].0, "bn.running_var");
    assert_close(
        &format!("{what} running mean"),
        &state[0].1,
        want.running_mean,
    );
    assert_close(
        &format!("{what} running var"),
        &state[1].1,
        want.running_var,
    );
    let x = cpu.alloc_from(&input(len, 1.0)).unwrap();
    bn.forward(&cpu, &x, &mut y, batch, Mode::Eval).unwrap();
    assert_close(
        &format!("{what} inference"),
        &cpu.to_host(&y, len).unwrap(),
        want.eval_out,
    );
}

#[test]
fn pytorch_convention_matches_torch_batch_norm() {
    check(
        "pytorch image",
        BatchNormSpec::PYTORCH,
        &[3, 5, C],
        4,
        Expected {
            out: expected::PYTORCH_IMAGE_OUT,
            dx: expected::PYTORCH_IMAGE_DX,
            dweight: expected::PYTORCH_IMAGE_DWEIGHT,
            dbias: expected::PYTORCH_IMAGE_DBIAS,
            running_mean: expected::PYTORCH_IMAGE_RUNNING_MEAN,
            running_var: expected::PYTORCH_IMAGE_RUNNING_VAR,
            eval_out: expected::PYTORCH_IMAGE_EVAL_OUT,
        },
    );
    check(
        "pytorch vector",
        BatchNormSpec::PYTORCH,
        &[C],
        5,
        Expected {
            out: expected::PYTORCH_VECTOR_OUT,
            dx: expected::PYTORCH_VECTOR_DX,
            dweight: expected::PYTORCH_VECTOR_DWEIGHT,
            dbias: expected::PYTORCH_VECTOR_DBIAS,
            running_mean: expected::PYTORCH_VECTOR_RUNNING_MEAN,
            running_var: expected::PYTORCH_VECTOR_RUNNING_VAR,
            eval_out: expected::PYTORCH_VECTOR_EVAL_OUT,
        },
    );
}

#[test]
fn keras_convention_matches_keras_defaults() {
    check(
        "keras image",
        BatchNormSpec::KERAS,
        &[3, 5, C],
        4,
        Expected {
            out: expected::KERAS_IMAGE_OUT,
            dx: expected::KERAS_IMAGE_DX,
            dweight: expected::KERAS_IMAGE_DWEIGHT,
            dbias: expected::KERAS_IMAGE_DBIAS,
            running_mean: expected::KERAS_IMAGE_RUNNING_MEAN,
            running_var: expected::KERAS_IMAGE_RUNNING_VAR,
            eval_out: expected::KERAS_IMAGE_EVAL_OUT,
        },
    );
    check(
        "keras vector",
        BatchNormSpec::KERAS,
        &[C],
        5,
        Expected {
            out: expected::KERAS_VECTOR_OUT,
            dx: expected::KERAS_VECTOR_DX,
            dweight: expected::KERAS_VECTOR_DWEIGHT,
            dbias: expected::KERAS_VECTOR_DBIAS,
            running_mean: expected::KERAS_VECTOR_RUNNING_MEAN,
            running_var: expected::KERAS_VECTOR_RUNNING_VAR,
            eval_out: expected::KERAS_VECTOR_EVAL_OUT,
        },
    );
}

#[test]
fn one_value_a_channel_cannot_train() {
    let cpu = Cpu::with_threads(1).unwrap();
    let spec = BatchNormSpec::KERAS;
    let mut bn =
        BatchNorm::<Cpu>::build(&cpu, &spec, Shape::new(&[4]), 8, &mut Rng::new(0)).unwrap();
    let x = cpu.alloc_from(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    let mut y = cpu.alloc(4).unwrap();
    let err = bn.forward(&cpu, &x, &mut y, 1, Mode::Train).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooFewValues {
                batch: 1,
                values: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("train with a larger batch"),
        "{err}"
    );
    // Inference takes a batch of one, with the initial statistics (mean 0, variance
    // 1): y = x / sqrt(1 + epsilon).
    bn.forward(&cpu, &x, &mut y, 1, Mode::Eval).unwrap();
    let y = cpu.to_host(&y, 4).unwrap();
    let scale = 1.0 / (1.0f32 + 1e-3).sqrt();
    assert_close(
        "untrained inference",
        &y,
        &[scale, 2.0 * scale, 3.0 * scale, 4.0 * scale],
    );
}

#[test]
fn frozen_scale_and_shift_are_not_parameters() {
    let cpu = Cpu::with_threads(1).unwrap();
    let spec = BatchNormSpec {
        scale: false,
        ..BatchNormSpec::KERAS
    };
    let bn =
        BatchNorm::<Cpu>::build(&cpu, &spec, Shape::new(&[2, 2, 3]), 4, &mut Rng::new(0)).unwrap();
    let mut names = Vec::new();
    bn.parameters("bn", &mut |p| {
        names.push(p.name);
        Ok(())
    })
    .unwrap();
    assert_eq!(names, ["bias"]);
    let mut state = 0;
    bn.state("bn", &mut |_| {
        state += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(state, 2);
}
