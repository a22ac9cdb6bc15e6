//! The loss op against finite differences of its own value, for every loss and every
//! kind of input, and its refusals.

use super::*;
use crate::{Cpu, Error};

const KINDS: [LossKind; 7] = [
    LossKind::MeanSquaredError,
    LossKind::MeanAbsoluteError,
    LossKind::Huber,
    LossKind::LogCosh,
    LossKind::BinaryCrossentropy,
    LossKind::CategoricalCrossentropy,
    LossKind::SparseCategoricalCrossentropy,
];

fn softmax_rows(z: &[f32], features: usize) -> Vec<f32> {
    z.chunks(features)
        .flat_map(|row| {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let e: Vec<f64> = row.iter().map(|&v| f64::from(v - max).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| (v / s) as f32)
        })
        .collect()
}

fn sigmoid_all(z: &[f32]) -> Vec<f32> {
    z.iter()
        .map(|&v| (1.0 / (1.0 + (-f64::from(v)).exp())) as f32)
        .collect()
}

struct Case {
    p: LossParams,
    target: Vec<f32>,
    weights: Option<Vec<f32>>,
}

/// The reduced loss, `sum(per_sample) * grad_scale`, and the gradient.
fn run(cpu: &Cpu, case: &Case, output: &[f32]) -> (f64, Vec<f32>) {
    let p = &case.p;
    let n = output.len();
    let out = cpu.alloc_from(output).unwrap();
    let target = cpu.alloc_from(&case.target).unwrap();
    let weights = case.weights.as_ref().map(|w| cpu.alloc_from(w).unwrap());
    let mut per_sample = cpu.alloc(p.batch as usize).unwrap();
    let mut grad = cpu.alloc(n).unwrap();
    cpu.loss(
        p,
        &out,
        &target,
        weights.as_ref(),
        &mut per_sample,
        &mut grad,
    )
    .unwrap();
    let values = cpu.to_host(&per_sample, p.batch as usize).unwrap();
    let total: f64 = values.iter().map(|&v| f64::from(v)).sum::<f64>() * f64::from(p.grad_scale);
    (total, cpu.to_host(&grad, n).unwrap())
}

fn case(
    kind: LossKind,
    input: LossInput,
    batch: usize,
    features: usize,
    seed: u32,
) -> (Case, Vec<f32>) {
    let noise = |i: usize, k: u32| {
        (((i as u32).wrapping_mul(2_654_435_761) ^ k.wrapping_mul(40_503)) % 1000) as f32 / 1000.0
    };
    let n = batch * features;
    let logits: Vec<f32> = (0..n).map(|i| 3.0 * noise(i, seed) - 1.5).collect();
    let target: Vec<f32> = match kind {
        LossKind::SparseCategoricalCrossentropy => (0..batch)
            .map(|i| ((i * 7 + seed as usize) % features) as f32)
            .collect(),
        LossKind::CategoricalCrossentropy => softmax_rows(
            &(0..n).map(|i| 4.0 * noise(i, seed + 9)).collect::<Vec<_>>(),
            features,
        ),
        LossKind::BinaryCrossentropy => (0..n).map(|i| noise(i, seed + 3)).collect(),
        _ => (0..n).map(|i| 4.0 * noise(i, seed + 5) - 2.0).collect(),
    };
    let weights = Some((0..batch).map(|i| 0.5 + noise(i, seed + 11)).collect());
    let p = LossParams {
        input,
        weighted: 1,
        label_smoothing: if kind.is_crossentropy() { 0.1 } else { 0.0 },
        delta: 0.7,
        ..LossParams::new(kind, batch as u32, features as u32)
    };
    (Case { p, target, weights }, logits)
}

/// The model output that the loss sees for the free variables `z`.
fn output_of(case: &Case, z: &[f32]) -> Vec<f32> {
    let p = &case.p;
    match (p.input, p.kind.is_crossentropy()) {
        (LossInput::Logits, _) | (_, false) => z.to_vec(),
        (_, true) if p.kind == LossKind::BinaryCrossentropy => sigmoid_all(z),
        (_, true) => softmax_rows(z, p.features as usize),
    }
}

fn check_gradient(cpu: &Cpu, case: &Case, z: &[f32]) {
    let (_, grad) = run(cpu, case, &output_of(case, z));
    // Without the fusion the gradient is with respect to the probabilities, so
    // differentiate by them; otherwise by the logits.
    let by_output = case.p.input == LossInput::Prediction;
    let x0: Vec<f32> = if by_output {
        output_of(case, z)
    } else {
        z.to_vec()
    };
    let eval = |x: &[f32]| {
        let out = if by_output {
            x.to_vec()
        } else {
            output_of(case, x)
        };
        run(cpu, case, &out).0
    };
    for i in 0..x0.len() {
        let h = 1e-3 * x0[i].abs().max(0.1);
        let (mut up, mut down) = (x0.clone(), x0.clone());
        up[i] += h;
        down[i] -= h;
        let numeric = (eval(&up) - eval(&down)) / f64::from(up[i] - down[i]);
        let analytic = f64::from(grad[i]);
        assert!(
            (numeric - analytic).abs() <= 2e-3 * (1.0 + numeric.abs()),
            "{:?} {:?}: d/dx[{i}] numeric {numeric} analytic {analytic}",
            case.p.kind,
            case.p.input
        );
    }
}

#[test]
fn every_gradient_matches_finite_differences() {
    let cpu = Cpu::with_threads(1).unwrap();
    for kind in KINDS {
        let inputs: &[LossInput] = if kind.is_crossentropy() {
            &[
                LossInput::Prediction,
                LossInput::Logits,
                LossInput::Activated,
            ]
        } else {
            &[LossInput::Prediction]
        };
        for &input in inputs {
            for (batch, features) in [(3, 4), (2, 1), (1, 5)] {
                if kind != LossKind::BinaryCrossentropy && kind.is_crossentropy() && features == 1 {
                    continue;
                }
                let (case, z) = case(kind, input, batch, features, 17);
                check_gradient(&cpu, &case, &z);
            }
        }
    }
}

#[test]
fn extreme_logits_stay_finite() {
    let cpu = Cpu::with_threads(1).unwrap();
    for kind in [
        LossKind::BinaryCrossentropy,
        LossKind::CategoricalCrossentropy,
        LossKind::SparseCategoricalCrossentropy,
    ] {
        let (mut case, _) = case(kind, LossInput::Logits, 2, 3, 5);
        case.p.label_smoothing = 0.0;
        let z = [100.0, -100.0, 0.0, -100.0, 100.0, 100.0];
        let (value, grad) = run(&cpu, &case, &z);
        assert!(value.is_finite() && value > 0.0, "{kind:?}: {value}");
        assert!(grad.iter().all(|g| g.is_finite()), "{kind:?}: {grad:?}");
    }
}

fn check_refusals<B: LossKernel>(backend: &B) {
    let (case, z) = case(
        LossKind::SparseCategoricalCrossentropy,
        LossInput::Logits,
        3,
        4,
        1,
    );
    let mut bad = z.clone();
    bad[9] = f32::NAN;
    let p = &case.p;
    let out = backend.alloc_from(&bad).unwrap();
    let w = backend.alloc_from(case.weights.as_ref().unwrap()).unwrap();
    let (mut per, mut grad) = (backend.alloc(3).unwrap(), backend.alloc(12).unwrap());
    let target = backend.alloc_from(&case.target).unwrap();
    // The CPU fails the call; the GPU reports at the next check (and only once).
    let err = backend
        .loss(p, &out, &target, Some(&w), &mut per, &mut grad)
        .and(backend.check_errors())
        .unwrap_err();
    assert!(
        matches!(err, Error::NonFinite { op: "loss", operand: "output", index: 9, value } if value.is_nan()),
        "{err}"
    );
    backend.check_errors().unwrap();
    let out = backend.alloc_from(&z).unwrap();
    for label in [4.0, -1.0, 1.5, f32::NAN] {
        let target = backend.alloc_from(&[0.0, label, 1.0]).unwrap();
        let err = backend
            .loss(p, &out, &target, Some(&w), &mut per, &mut grad)
            .and(backend.check_errors())
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidTarget { index: 1, classes: 4, value, .. }
                if value.to_bits() == label.to_bits()),
            "{label}: {err}"
        );
    }
    let unweighted = LossParams { weighted: 1, ..*p };
    assert!(
        backend
            .loss(&unweighted, &out, &target, None, &mut per, &mut grad)
            .is_err()
    );
}

#[test]
fn refuses_non_finite_outputs_and_bad_labels() {
    check_refusals(&Cpu::with_threads(1).unwrap());
}

#[cfg(feature = "cuda")]
#[test]
fn refuses_non_finite_outputs_and_bad_labels_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        check_refusals(&gpu);
    }
}

/// `(per_sample, grad)` of `case` on `backend`.
#[cfg(feature = "cuda")]
fn values_and_gradient<B: LossKernel>(
    backend: &B,
    case: &Case,
    output: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let p = &case.p;
    let out = backend.alloc_from(output).unwrap();
    let target = backend.alloc_from(&case.target).unwrap();
    let weights = case
        .weights
        .as_ref()
        .map(|w| backend.alloc_from(w).unwrap());
    let mut per_sample = backend.alloc(p.batch as usize).unwrap();
    let mut grad = backend.alloc(output.len()).unwrap();
    backend
        .loss(
            p,
            &out,
            &target,
            weights.as_ref(),
            &mut per_sample,
            &mut grad,
        )
        .unwrap();
    (
        backend.to_host(&per_sample, p.batch as usize).unwrap(),
        backend.to_host(&grad, output.len()).unwrap(),
    )
}

/// The GPU against the CPU for every loss and input, weighted and not.
#[cfg(feature = "cuda")]
#[test]
fn cuda_matches_cpu() {
    use crate::cuda::parity::assert_close;
    let Some(gpu) = crate::cuda::test_device() else {
        return;
    };
    let cpu = Cpu::with_threads(1).unwrap();
    for kind in KINDS {
        for input in [
            LossInput::Prediction,
            LossInput::Logits,
            LossInput::Activated,
        ] {
            if input != LossInput::Prediction && !kind.is_crossentropy() {
                continue;
            }
            for (batch, features) in [(3, 4), (2, 1), (64, 10), (5, 300)] {
                if kind != LossKind::BinaryCrossentropy && kind.is_crossentropy() && features == 1 {
                    continue;
                }
                let (mut case, z) = case(kind, input, batch, features, 23);
                let output = output_of(&case, &z);
                for weighted in [1, 0] {
                    case.p.weighted = weighted;
                    let (vc, gc) = values_and_gradient(&cpu, &case, &output);
                    let (vg, gg) = values_and_gradient(&gpu, &case, &output);
                    let what = format!("{kind:?} {input:?} {batch}x{features} weighted {weighted}");
                    assert_close(&format!("{what} values"), &vc, &vg, 1e-5, 1e-6);
                    assert_close(&format!("{what} gradient"), &gc, &gg, 1e-5, 1e-6);
                }
            }
        }
    }
}
