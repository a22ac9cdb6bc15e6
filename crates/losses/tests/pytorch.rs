//! Every loss against PyTorch: value, per-sample values and gradient.
//!
//! The cases come from `oracle/pytorch_losses.py`, kept beside the generated
//! `oracle/pytorch_losses.json`; its header says how each kiln option maps onto
//! PyTorch.

// A failing call fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kiln_kernels::{Cpu, Tensor};
use kiln_losses::{BatchTargets, Criterion, Loss, Reduction};
use kiln_shape::{Activation, Rank1, StaticShape};
use serde_json::Value;

const ORACLE: &str = include_str!("oracle/pytorch_losses.json");

fn floats(v: &Value) -> Option<Vec<f32>> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_f64().unwrap() as f32).collect())
}

fn loss_of(case: &Value) -> Loss {
    let mut loss = match case["loss"].as_str().unwrap() {
        "mean_squared_error" => Loss::mean_squared_error(),
        "mean_absolute_error" => Loss::mean_absolute_error(),
        "huber" => Loss::huber(case["delta"].as_f64().unwrap() as f32),
        "log_cosh" => Loss::log_cosh(),
        "binary_crossentropy" => Loss::binary_crossentropy(),
        "categorical_crossentropy" => Loss::categorical_crossentropy(),
        "sparse_categorical_crossentropy" => Loss::sparse_categorical_crossentropy(),
        other => panic!("unknown loss {other}"),
    };
    loss = loss
        .from_logits(case["from_logits"].as_bool().unwrap())
        .label_smoothing(case["label_smoothing"].as_f64().unwrap() as f32)
        .reduction(match case["reduction"].as_str().unwrap() {
            "mean" => Reduction::Mean,
            "sum" => Reduction::Sum,
            "none" => Reduction::None,
            "weighted_mean" => Reduction::WeightedMean,
            other => panic!("unknown reduction {other}"),
        });
    if let Some(weights) = floats(&case["class_weights"]) {
        loss = loss.class_weights(weights);
    }
    loss
}

fn close(what: &str, got: f32, want: f32, tol: f32) {
    assert!(
        (got - want).abs() <= tol * (1.0 + want.abs()),
        "{what}: kiln {got}, PyTorch {want}"
    );
}

fn run<S: StaticShape>(cpu: &Cpu, case: &Value) {
    let name = case["name"].as_str().unwrap();
    let batch = case["batch"].as_u64().unwrap() as usize;
    let activation = match case["activation"].as_str() {
        Some("softmax") => Some(Activation::Softmax),
        Some("sigmoid") => Some(Activation::Sigmoid),
        _ => None,
    };
    let output = floats(&case["output"]).unwrap();
    let output = Tensor::<S, Cpu>::from_slice(cpu, batch, &output).unwrap();
    // Room for more than this batch: the criterion works on prefixes.
    let mut criterion =
        Criterion::<S, Cpu>::new(loss_of(case), cpu, batch + 3, activation).unwrap();
    let labels: Option<Vec<u32>> = case["classes"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().unwrap() as u32).collect());
    let values = floats(&case["values"]);
    let targets = match (&labels, &values) {
        (_, Some(v)) => BatchTargets::Values(v),
        (Some(l), None) => BatchTargets::Labels(l),
        (None, None) => panic!("{name}: no targets"),
    };
    let weights = floats(&case["sample_weights"]);
    let value = criterion
        .compute(&output.view(), targets, weights.as_deref())
        .unwrap();
    if let Some(want) = case["value"].as_f64() {
        close(&format!("{name}: value"), value, want as f32, 2e-6);
    }
    if let Some(want) = floats(&case["per_sample"]) {
        for (i, (g, w)) in criterion.per_sample().iter().zip(&want).enumerate() {
            close(&format!("{name}: per_sample[{i}]"), *g, *w, 2e-6);
        }
    }
    let grad = criterion.gradient().to_vec(cpu).unwrap();
    let want = floats(&case["grad"]).unwrap();
    assert_eq!(grad.len(), want.len(), "{name}: gradient length");
    for (i, (g, w)) in grad.iter().zip(&want).enumerate() {
        close(&format!("{name}: grad[{i}]"), *g, *w, 1e-6);
    }
    // Class labels for a single binary output give the same as 0/1 values.
    if let (Some(l), Some(v)) = (&labels, &values) {
        let again = criterion
            .compute(&output.view(), BatchTargets::Labels(l), weights.as_deref())
            .unwrap();
        let reference = criterion
            .compute(&output.view(), BatchTargets::Values(v), weights.as_deref())
            .unwrap();
        assert_eq!(again, reference, "{name}: labels and values disagree");
    }
}

#[test]
fn every_loss_matches_pytorch() {
    let cpu = Cpu::with_threads(1).unwrap();
    let oracle: Value = serde_json::from_str(ORACLE).unwrap();
    let cases = oracle["cases"].as_array().unwrap();
    assert!(cases.len() >= 40, "the oracle lost cases");
    for case in cases {
        match case["features"].as_u64().unwrap() {
            1 => run::<Rank1<1>>(&cpu, case),
            3 => run::<Rank1<3>>(&cpu, case),
            10 => run::<Rank1<10>>(&cpu, case),
            other => panic!("no shape for {other} features"),
        }
    }
}
