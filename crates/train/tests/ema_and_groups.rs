//! The moving average of the weights on a model with batch normalisation, against
//! PyTorch's `AveragedModel(use_buffers=True)` (`oracle/pytorch_ema.py`, which wrote
//! `oracle/pytorch_ema.json`); and checkpoints that keep the average and an
//! optimizer with parameter groups, resume both exactly, and refuse what does not fit
//! without changing anything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use kiln::prelude::*;
use kiln_optim::{Ema, ParamGroup};
use kiln_train::checkpoint::{self, CheckpointExtra};
use kiln_train::{Error, Weights};
use serde_json::Value;

kiln::model! {
    /// The model of `oracle/pytorch_ema.py`.
    pub struct EmaNet {
        input: [6, 6, 2],
        conv1: Conv2d(3, 3),
        bn1: BatchNorm(relu, convention = pytorch),
        flat: Flatten,
        out: Dense(2),
    }
}

const ORACLE: &str = include_str!("oracle/pytorch_ema.json");
const BATCH: usize = 4;

fn cpu() -> Cpu {
    Cpu::with_threads(1).unwrap()
}

/// Sets every tensor of `model` (trainable and saved state) from `values`, keyed as
/// in checkpoints.
fn load_values(model: &mut EmaNet, values: &Value) {
    let cpu = model.backend().clone();
    let take = |key: String, buffer: &mut <Cpu as Storage>::Buffer, len: usize| {
        let v: Vec<f32> = values[&key]
            .as_array()
            .unwrap_or_else(|| panic!("the oracle lacks {key}"))
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(v.len(), len, "{key}");
        cpu.upload(&v, buffer).unwrap();
    };
    model
        .visit_parameters(&mut |p| {
            take(p.key(), p.value, p.shape.size());
            Ok(())
        })
        .unwrap();
    model
        .visit_state(&mut |s| {
            take(s.key(), s.value, s.shape.size());
            Ok(())
        })
        .unwrap();
}

/// Within 1e-6 of PyTorch, relative to the value or to 1 near zero (the tolerance of
/// the optimizer's oracle).
fn close(what: &str, got: f32, want: f64) {
    let got = f64::from(got);
    assert!(
        (got - want).abs() <= 1e-6 * want.abs().max(1.0),
        "{what}: kiln {got}, PyTorch {want}"
    );
}

#[test]
fn the_average_follows_pytorchs_averaged_model() {
    let oracle: Value = serde_json::from_str(ORACLE).unwrap();
    let cases = oracle["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "the oracle lost cases");
    let cpu = cpu();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let cfg = &case["kiln"];
        let mut ema =
            Ema::new(cfg["decay"].as_f64().unwrap()).every(cfg["every"].as_u64().unwrap());
        if let Some(power) = cfg["warmup"].as_f64() {
            ema = ema.warmup(power);
        }
        let mut model = EmaNet::new(&cpu, BATCH, 1).unwrap();
        let (trajectory, averages) = (
            case["model"].as_array().unwrap(),
            case["ema"].as_array().unwrap(),
        );
        assert_eq!(trajectory.len(), 8, "{name}: steps");
        let mut compared = 0;
        for (t, (weights, want)) in trajectory.iter().zip(averages).enumerate() {
            load_values(&mut model, weights);
            ema.update(&model).unwrap();
            if ema.updates() == 0 {
                continue;
            }
            let state = ema.state(&cpu).unwrap();
            assert_eq!(
                state.tensors.len(),
                8,
                "{name}: weights and running statistics"
            );
            for (key, got) in &state.tensors {
                let want = want[key].as_array().unwrap();
                assert_eq!(got.len(), want.len(), "{name}: {key}");
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    close(
                        &format!("{name}: step {}, {key}[{i}]", t + 1),
                        *g,
                        w.as_f64().unwrap(),
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 4 * 170, "{name}: {compared} values compared");

        // Swapped in, the model holds the averages, running statistics included.
        let average = ema.state(&cpu).unwrap();
        let own = Weights::of(&model).unwrap();
        ema.swap(&mut model).unwrap();
        let swapped = Weights::of(&model).unwrap();
        for (key, values) in &average.tensors {
            assert_eq!(
                swapped.get(key).unwrap().1,
                values.as_slice(),
                "{name}: {key}"
            );
        }
        ema.swap(&mut model).unwrap();
        assert_eq!(Weights::of(&model).unwrap(), own, "{name}: swapped back");
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-train-ema-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn batch() -> Vec<f32> {
    (0..BATCH * 6 * 6 * 2)
        .map(|i| (i as f32 * 0.37).sin() * 1.5)
        .collect()
}

/// SGD with Nesterov momentum and L2 decay, none on batch norm and biases, the
/// classifier at half the rate.
fn optimizer() -> Optimizer<Cpu> {
    Optimizer::new(Sgd {
        learning_rate: 0.05,
        momentum: 0.9,
        nesterov: true,
    })
    .weight_decay(5e-4)
    .group(
        ParamGroup::new()
            .kinds(["BatchNorm"])
            .names(["*.bias"])
            .weight_decay(0.0),
    )
    .group(ParamGroup::new().names(["out.*"]).learning_rate_scale(0.5))
}

fn average() -> Ema<Cpu> {
    Ema::new(0.9).warmup(0.75)
}

/// One training step on a fixed batch, then the average's update.
fn step(model: &mut EmaNet, optimizer: &mut Optimizer<Cpu>, ema: &mut Ema<Cpu>) {
    let mut criterion = model.criterion(Loss::mean_squared_error()).unwrap();
    let output = model.forward_host(&batch(), Mode::Train).unwrap();
    let targets: Vec<f32> = (0..BATCH * 2).map(|i| (i as f32 * 0.5).cos()).collect();
    criterion
        .compute(&output, BatchTargets::Values(&targets), None)
        .unwrap();
    model.zero_grad().unwrap();
    model
        .backward(criterion.gradient(), criterion.grad_at())
        .unwrap();
    optimizer.step(model).unwrap();
    ema.update(model).unwrap();
}

/// The model's outputs in inference, with the averages swapped in.
fn averaged_outputs(model: &mut EmaNet, ema: &mut Ema<Cpu>) -> Vec<u32> {
    let cpu = model.backend().clone();
    ema.swap(model).unwrap();
    let out = model
        .forward_host(&batch(), Mode::Eval)
        .unwrap()
        .to_vec(&cpu)
        .unwrap();
    ema.swap(model).unwrap();
    out.iter().map(|v| v.to_bits()).collect()
}

fn checkpoint_detail(err: &Error, path: &Path) -> String {
    match err {
        Error::Checkpoint { path: p, detail } => {
            assert_eq!(p, path, "{err}");
            detail.clone()
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn a_checkpoint_keeps_the_average_and_the_groups_and_training_resumes_exactly() {
    let dir = scratch("resume");
    let path = dir.join("ema.safetensors");
    let cpu = cpu();
    let (mut model, mut opt, mut ema) =
        (EmaNet::new(&cpu, BATCH, 1).unwrap(), optimizer(), average());
    for _ in 0..3 {
        step(&mut model, &mut opt, &mut ema);
    }
    let extra = CheckpointExtra {
        optimizer: Some(&opt),
        epoch: Some(1),
        ..CheckpointExtra::default()
    };
    checkpoint::save_with_ema(&path, &model, &extra, &ema).unwrap();

    // The weights keep their names; the averages come as `ema.<name>`, shaped as
    // their tensor.
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let weights = Weights::of(&model).unwrap();
    for (key, shape, _) in weights.iter() {
        assert_eq!(file.tensor(key).unwrap().shape(), shape, "{key}");
        assert_eq!(
            file.tensor(&format!("ema.{key}")).unwrap().shape(),
            shape,
            "ema.{key}"
        );
    }
    assert_eq!(
        file.len(),
        2 * weights.len() + ema_free_optimizer_tensors(&opt, &cpu)
    );

    let info = checkpoint::read_info(&path).unwrap();
    assert_eq!(info.ema.as_ref(), Some(&ema.state(&cpu).unwrap()));
    assert_eq!(info.optimizer.unwrap().groups.len(), 2);

    let (mut model2, mut opt2, mut ema2) =
        (EmaNet::new(&cpu, BATCH, 9).unwrap(), optimizer(), average());
    checkpoint::load_with_ema(&path, &mut model2, Some(&mut opt2), &mut ema2).unwrap();
    assert_eq!(
        averaged_outputs(&mut model2, &mut ema2),
        averaged_outputs(&mut model, &mut ema)
    );
    for _ in 0..3 {
        step(&mut model, &mut opt, &mut ema);
        step(&mut model2, &mut opt2, &mut ema2);
    }
    assert_eq!(Weights::of(&model2).unwrap(), Weights::of(&model).unwrap());
    assert_eq!(ema2.state(&cpu).unwrap(), ema.state(&cpu).unwrap());
    assert_eq!(
        averaged_outputs(&mut model2, &mut ema2),
        averaged_outputs(&mut model, &mut ema)
    );

    // Without the average, the same file loads as any checkpoint.
    let mut plain = EmaNet::new(&cpu, BATCH, 3).unwrap();
    let info = checkpoint::load_weights(&path, &mut plain).unwrap();
    assert!(info.ema.is_some());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The optimizer's state tensors in a checkpoint.
fn ema_free_optimizer_tensors(opt: &Optimizer<Cpu>, cpu: &Cpu) -> usize {
    opt.state(cpu).unwrap().tensors.len()
}

#[test]
fn what_does_not_fit_is_refused_and_changes_nothing() {
    let dir = scratch("unfit");
    let with_ema = dir.join("with-ema.safetensors");
    let without = dir.join("without.safetensors");
    let cpu = cpu();
    let (mut model, mut opt, mut ema) =
        (EmaNet::new(&cpu, BATCH, 1).unwrap(), optimizer(), average());
    for _ in 0..2 {
        step(&mut model, &mut opt, &mut ema);
    }
    let extra = CheckpointExtra {
        optimizer: Some(&opt),
        ..CheckpointExtra::default()
    };
    checkpoint::save_with_ema(&with_ema, &model, &extra, &ema).unwrap();
    checkpoint::save(&without, &model, &extra).unwrap();

    // A model, an optimizer and an average that have trained elsewhere.
    let (mut other, mut other_opt, mut other_ema) =
        (EmaNet::new(&cpu, BATCH, 5).unwrap(), optimizer(), average());
    step(&mut other, &mut other_opt, &mut other_ema);
    let snapshot = |m: &EmaNet, o: &Optimizer<Cpu>, e: &Ema<Cpu>| {
        (
            Weights::of(m).unwrap(),
            o.state(&cpu).unwrap(),
            e.state(&cpu).unwrap(),
        )
    };
    let before = snapshot(&other, &other_opt, &other_ema);

    let err = checkpoint::load_with_ema(&without, &mut other, Some(&mut other_opt), &mut other_ema)
        .unwrap_err();
    assert!(
        checkpoint_detail(&err, &without).contains("holds no moving average"),
        "{err}"
    );

    let mut other_decay = Ema::new(0.99).warmup(0.75);
    other_decay.update(&other).unwrap();
    let decay_before = other_decay.state(&cpu).unwrap();
    let err = checkpoint::load_with_ema(
        &with_ema,
        &mut other,
        Some(&mut other_opt),
        &mut other_decay,
    )
    .unwrap_err();
    let detail = checkpoint_detail(&err, &with_ema);
    assert!(
        detail.contains("moving average does not fit") && detail.contains("decay 0.9,"),
        "{detail}"
    );
    assert_eq!(other_decay.state(&cpu).unwrap(), decay_before);

    // The average fits, the optimizer's groups do not: the average is put back.
    let mut ungrouped = Optimizer::new(Sgd {
        learning_rate: 0.05,
        momentum: 0.9,
        nesterov: true,
    })
    .weight_decay(5e-4);
    step(&mut other, &mut ungrouped, &mut Ema::new(0.5));
    let ungrouped_before = ungrouped.state(&cpu).unwrap();
    let weights_before = Weights::of(&other).unwrap();
    let err =
        checkpoint::load_with_ema(&with_ema, &mut other, Some(&mut ungrouped), &mut other_ema)
            .unwrap_err();
    let detail = checkpoint_detail(&err, &with_ema);
    assert!(
        detail.contains("made with group(kinds [BatchNorm]") && detail.contains("no groups"),
        "{detail}"
    );
    assert_eq!(ungrouped.state(&cpu).unwrap(), ungrouped_before);
    let after = snapshot(&other, &other_opt, &other_ema);
    assert_eq!(after.0, weights_before, "the model changed");
    assert_eq!(after.1, before.1, "the optimizer changed");
    assert_eq!(after.2, before.2, "the average changed");
    std::fs::remove_dir_all(&dir).unwrap();
}
