//! Loading refuses a checkpoint whose values a model cannot compute with: a NaN or an
//! infinity in a weight, in optimizer state or in a moving average is an error naming
//! the tensor and the index, unless the caller opts out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use kiln::prelude::*;
use kiln_train::checkpoint::{self, CheckpointExtra, LoadOptions};
use kiln_train::{Error, Weights};

kiln::model! {
    /// A small dense network.
    pub struct Net {
        input: [6],
        hidden: Dense(5, relu),
        out: Dense(3),
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-train-values-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sets value `index` of the tensor `key` of `model` to `value`.
fn poison(model: &mut Net, key: &str, index: usize, value: f32) {
    let cpu = model.backend().clone();
    model
        .visit_parameters(&mut |p| {
            if p.key() == key {
                let mut values = cpu.to_host(p.value, p.shape.size())?;
                values[index] = value;
                cpu.upload(&values, p.value)?;
            }
            Ok(())
        })
        .unwrap();
}

fn detail(err: &Error) -> &str {
    match err {
        Error::Checkpoint { detail, .. } => detail,
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn a_non_finite_weight_is_refused_naming_the_tensor_and_the_index() {
    let dir = scratch("weight");
    let path = dir.join("net.safetensors");
    let cpu = Cpu::with_threads(1).unwrap();
    for (value, shown) in [(f32::NAN, "NaN"), (f32::NEG_INFINITY, "-inf")] {
        let mut saved = Net::new(&cpu, 4, 1).unwrap();
        poison(&mut saved, "out.weight", 7, value);
        checkpoint::save(&path, &saved, &CheckpointExtra::default()).unwrap();

        let mut loaded = Net::new(&cpu, 4, 2).unwrap();
        let before = Weights::of(&loaded).unwrap();
        let err = checkpoint::load_weights(&path, &mut loaded).unwrap_err();
        let detail = detail(&err);
        assert!(
            detail.contains(&format!("`out.weight` holds {shown} at index 7")),
            "{err}"
        );
        assert!(detail.contains("allow_non_finite"), "{err}");
        assert!(err.to_string().contains("net.safetensors"), "{err}");
        assert_eq!(Weights::of(&loaded).unwrap(), before, "the model changed");

        // The explicit opt-out loads it as it is.
        let options = LoadOptions::default().allow_non_finite(true);
        checkpoint::load_with_options(&path, &mut loaded, None, None, options).unwrap();
        let weights = Weights::of(&loaded).unwrap();
        let loaded_value = weights.get("out.weight").unwrap().1[7];
        assert_eq!(loaded_value.to_bits(), value.to_bits());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn non_finite_optimizer_state_is_refused_when_the_optimizer_is_loaded() {
    let dir = scratch("optimizer");
    let path = dir.join("net.safetensors");
    let cpu = Cpu::with_threads(1).unwrap();
    let mut model = Net::new(&cpu, 4, 1).unwrap();
    let mut optimizer = Optimizer::new(Adam::default());
    // One step, so that Adam holds its moments; then a moment is poisoned through a
    // state that is loaded back into the optimizer unchecked.
    let x: Vec<f32> = (0..24).map(|i| (i as f32 * 0.3).sin()).collect();
    let loss = Loss::sparse_categorical_crossentropy().from_logits(true);
    let mut criterion = model.criterion(loss).unwrap();
    let output = model.forward_host(&x, Mode::Train).unwrap();
    criterion
        .compute(&output, BatchTargets::Labels(&[0, 2, 1, 1]), None)
        .unwrap();
    model.zero_grad().unwrap();
    model
        .backward(criterion.gradient(), criterion.grad_at())
        .unwrap();
    optimizer.step(&mut model).unwrap();
    let mut state = optimizer.state(&cpu).unwrap();
    let (name, values) = state
        .tensors
        .iter_mut()
        .find(|(n, _)| n == "hidden.bias.exp_avg")
        .unwrap();
    values[2] = f32::INFINITY;
    let name = name.clone();
    let mut poisoned = Optimizer::new(Adam::default());
    poisoned.load_state(&model, &state).unwrap();
    let extra = CheckpointExtra {
        optimizer: Some(&poisoned),
        epoch: Some(1),
        history: None,
    };
    checkpoint::save(&path, &model, &extra).unwrap();

    // The weights alone are finite and load.
    let mut loaded = Net::new(&cpu, 4, 2).unwrap();
    checkpoint::load_weights(&path, &mut loaded).unwrap();
    let mut fresh = Optimizer::new(Adam::default());
    let err = checkpoint::load(&path, &mut loaded, Some(&mut fresh)).unwrap_err();
    assert!(
        detail(&err).contains(&format!("`optimizer.{name}` holds inf at index 2")),
        "{err}"
    );
    assert_eq!(fresh.iterations(), 0, "the optimizer changed");
    std::fs::remove_dir_all(&dir).unwrap();
}
