//! Checkpoints: round trips that reproduce a model bit for bit and resume training
//! exactly, mismatches and corrupt files reported without harm, and PyTorch interop
//! in both directions (oracle scripts in `tests/oracle/`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::prelude::*;
use kiln_train::checkpoint::{self, CheckpointExtra};
use kiln_train::{EpochLog, Error, History, Weights};

kiln::model! {
    /// The CNN of `tests/oracle/pytorch_safetensors.py`.
    pub struct TorchCnn {
        input: [8, 8, 2],
        conv1: Conv2d(4, 3, relu),
        pool1: MaxPool2d(2),
        flat: Flatten,
        out: Dense(3),
    }
}

kiln::model! {
    /// `TorchCnn` with one more filter and its last layer renamed.
    pub struct OtherCnn {
        input: [8, 8, 2],
        conv1: Conv2d(5, 3, relu),
        pool1: MaxPool2d(2),
        flat: Flatten,
        fc: Dense(3),
    }
}

kiln::model! {
    /// `TorchCnn` with a batch normalisation: saved state beside the weights.
    pub struct NormCnn {
        input: [8, 8, 2],
        conv1: Conv2d(4, 3),
        bn1: BatchNorm(relu, convention = pytorch),
        pool1: MaxPool2d(2),
        flat: Flatten,
        out: Dense(3),
    }
}

const BATCH: usize = 5;
const SAMPLE: usize = 8 * 8 * 2;

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "kiln-train-checkpoint-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn cpu() -> Cpu {
    Cpu::with_threads(1).unwrap()
}

fn batch() -> Vec<f32> {
    (0..BATCH * SAMPLE)
        .map(|i| (i as f32 * 0.37).sin() * 1.5)
        .collect()
}

fn outputs<M: Model<Cpu>>(model: &mut M, x: &[f32]) -> Vec<f32> {
    let cpu = model.backend().clone();
    model
        .forward_host(x, Mode::Eval)
        .unwrap()
        .to_vec(&cpu)
        .unwrap()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// One Adam step on a fixed batch with class targets.
fn train_step(model: &mut TorchCnn, optimizer: &mut Optimizer<Cpu>) {
    let loss = Loss::sparse_categorical_crossentropy().from_logits(true);
    let mut criterion = model.criterion(loss).unwrap();
    let x = batch();
    let output = model.forward_host(&x, Mode::Train).unwrap();
    criterion
        .compute(&output, BatchTargets::Labels(&[0, 2, 1, 1, 0]), None)
        .unwrap();
    model.zero_grad().unwrap();
    model
        .backward(criterion.gradient(), criterion.grad_at())
        .unwrap();
    optimizer.step(model).unwrap();
}

fn history() -> History {
    let epoch = |epoch: usize, loss: f64, val_loss: f64| EpochLog {
        epoch,
        values: vec![
            ("loss".into(), loss),
            ("accuracy".into(), 0.1 + 0.2),
            ("val_loss".into(), val_loss),
        ],
        learning_rate: 1e-3 / 3.0,
        seconds: 1.25,
    };
    History {
        epochs: vec![
            epoch(0, 1.0986122886681098, 1.05),
            epoch(1, 0.731_234_5, f64::INFINITY),
            epoch(2, f64::NAN, f64::NEG_INFINITY),
        ],
    }
}

/// An epoch's figures as bits: epoch, values, learning rate, seconds.
type EpochBits = (usize, Vec<(String, u64)>, u64, u64);

/// `History` compared value by value through the bits, so that NaN equals NaN.
fn history_bits(h: &History) -> Vec<EpochBits> {
    h.epochs
        .iter()
        .map(|e| {
            let values = e
                .values
                .iter()
                .map(|(n, v)| (n.clone(), v.to_bits()))
                .collect();
            (
                e.epoch,
                values,
                e.learning_rate.to_bits(),
                e.seconds.to_bits(),
            )
        })
        .collect()
}

fn checkpoint_detail(err: &Error, path: &Path) -> String {
    match err {
        Error::Checkpoint { path: p, detail } => {
            assert_eq!(p, path, "{err}");
            assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
            detail.clone()
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn saved_weights_reproduce_the_outputs_bit_for_bit() {
    let dir = scratch("round-trip");
    let path = dir.join("model.safetensors");
    let cpu = cpu();
    let x = batch();
    let mut saved = TorchCnn::new(&cpu, BATCH, 1).unwrap();
    let expected = outputs(&mut saved, &x);
    checkpoint::save(&path, &saved, &CheckpointExtra::default()).unwrap();

    let mut loaded = TorchCnn::new(&cpu, BATCH, 2).unwrap();
    assert_ne!(bits(&outputs(&mut loaded, &x)), bits(&expected));
    let info = checkpoint::load_weights(&path, &mut loaded).unwrap();
    assert_eq!(bits(&outputs(&mut loaded, &x)), bits(&expected));
    assert_eq!(Weights::of(&loaded).unwrap(), Weights::of(&saved).unwrap());

    assert_eq!(info.model.as_deref(), Some("TorchCnn"));
    assert_eq!(
        info.kiln_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(info.epoch, None);
    assert_eq!(info.history, None);
    assert_eq!(info.optimizer, None);
    assert_eq!(info.metadata["format"], "kiln");
    assert_eq!(files_in(&dir), ["model.safetensors"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn optimizer_state_epoch_and_history_survive_and_training_resumes_exactly() {
    let dir = scratch("resume");
    let path = dir.join("ckpt.safetensors");
    let cpu = cpu();
    let mut model = TorchCnn::new(&cpu, BATCH, 3).unwrap();
    let mut optimizer = Optimizer::new(Adam::default()).learning_rate_fixed(0.01);
    for _ in 0..3 {
        train_step(&mut model, &mut optimizer);
    }
    optimizer.set_learning_rate(0.003).unwrap();
    let history = history();
    let extra = CheckpointExtra {
        optimizer: Some(&optimizer),
        epoch: Some(3),
        history: Some(&history),
    };
    checkpoint::save(&path, &model, &extra).unwrap();

    let mut resumed = TorchCnn::new(&cpu, BATCH, 4).unwrap();
    let mut resumed_optimizer = Optimizer::new(Adam::default());
    let info = checkpoint::load(&path, &mut resumed, Some(&mut resumed_optimizer)).unwrap();
    assert_eq!(info.epoch, Some(3));
    assert_eq!(
        history_bits(info.history.as_ref().unwrap()),
        history_bits(&history)
    );
    let state = optimizer.state(&cpu).unwrap();
    assert_eq!(info.optimizer.as_ref(), Some(&state));
    assert_eq!(resumed_optimizer.state(&cpu).unwrap(), state);
    assert_eq!(resumed_optimizer.iterations(), 3);
    assert_eq!(resumed_optimizer.learning_rate(), 0.003);
    let read = checkpoint::read_info(&path).unwrap();
    assert_eq!((read.epoch, &read.optimizer), (info.epoch, &info.optimizer));
    assert_eq!(read.metadata, info.metadata);

    for _ in 0..2 {
        train_step(&mut model, &mut optimizer);
        train_step(&mut resumed, &mut resumed_optimizer);
    }
    assert_eq!(Weights::of(&resumed).unwrap(), Weights::of(&model).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_optimizer_saved_before_its_first_step_restores_fresh() {
    let dir = scratch("fresh-optimizer");
    let path = dir.join("ckpt.safetensors");
    let cpu = cpu();
    let model = TorchCnn::new(&cpu, BATCH, 3).unwrap();
    let optimizer = Optimizer::new(Adam::default()).learning_rate_fixed(0.02);
    let extra = CheckpointExtra {
        optimizer: Some(&optimizer),
        ..CheckpointExtra::default()
    };
    checkpoint::save(&path, &model, &extra).unwrap();
    let mut loaded = TorchCnn::new(&cpu, BATCH, 4).unwrap();
    let mut fresh = Optimizer::new(Adam::default());
    checkpoint::load(&path, &mut loaded, Some(&mut fresh)).unwrap();
    assert_eq!(fresh.learning_rate(), 0.02);
    assert_eq!(fresh.iterations(), 0);
    train_step(&mut loaded, &mut fresh);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_of_another_model_lists_every_difference_and_changes_nothing() {
    let dir = scratch("mismatch");
    let path = dir.join("torch-cnn.safetensors");
    let cpu = cpu();
    checkpoint::save(
        &path,
        &TorchCnn::new(&cpu, 1, 1).unwrap(),
        &CheckpointExtra::default(),
    )
    .unwrap();
    let mut other = OtherCnn::new(&cpu, 1, 2).unwrap();
    let before = Weights::of(&other).unwrap();
    let err = checkpoint::load_weights(&path, &mut other).unwrap_err();
    let detail = checkpoint_detail(&err, &path);
    for expected in [
        "does not fit model `OtherCnn` (it was saved from model `TorchCnn`), 6 differences",
        "conv1.weight has shape [3, 3, 2, 5] in the model but [3, 3, 2, 4] in the file",
        "conv1.bias has shape [5] in the model but [4] in the file",
        "fc.weight [45, 3] is missing",
        "fc.bias [3] is missing",
        "out.weight [36, 3] is not in the model",
        "out.bias [3] is not in the model",
    ] {
        assert!(detail.contains(expected), "`{expected}` not in: {detail}");
    }
    assert_eq!(Weights::of(&other).unwrap(), before);

    // The in-memory form checks the same way.
    let err = Weights::of(&TorchCnn::new(&cpu, 1, 1).unwrap())
        .unwrap()
        .restore(&mut other)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(d) if d.contains("fc.weight [45, 3] is missing")),
        "{err}"
    );
    assert_eq!(Weights::of(&other).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A safetensors file written by hand: the header's length, the header, the data.
fn raw_safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn a_tensor_that_is_not_f32_is_named_with_its_type() {
    let dir = scratch("dtype");
    let path = dir.join("f64.safetensors");
    let cpu = cpu();
    let model = TorchCnn::new(&cpu, 1, 1).unwrap();
    let weights = Weights::of(&model).unwrap();
    // conv1.weight and out.* as F32, conv1.bias as F64.
    let mut header = String::from("{");
    let mut data = Vec::new();
    for (name, shape, values) in weights.iter() {
        let (dtype, bytes): (&str, Vec<u8>) = if name == "conv1.bias" {
            let b = values.iter().flat_map(|v| f64::from(*v).to_le_bytes());
            ("F64", b.collect())
        } else {
            ("F32", values.iter().flat_map(|v| v.to_le_bytes()).collect())
        };
        header += &format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{},{}]}},",
            data.len(),
            data.len() + bytes.len()
        );
        data.extend(bytes);
    }
    header.pop();
    header.push('}');
    std::fs::write(&path, raw_safetensors(&header, &data)).unwrap();

    let mut loaded = TorchCnn::new(&cpu, 1, 2).unwrap();
    let before = Weights::of(&loaded).unwrap();
    let err = checkpoint::load_weights(&path, &mut loaded).unwrap_err();
    let detail = checkpoint_detail(&err, &path);
    assert!(
        detail.contains("1 difference: conv1.bias is F64 [4], kiln loads F32 only"),
        "{detail}"
    );
    assert_eq!(Weights::of(&loaded).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_files_get_a_clear_error_naming_the_file() {
    let dir = scratch("corrupt");
    let cpu = cpu();
    let good = dir.join("good.safetensors");
    checkpoint::save(
        &good,
        &TorchCnn::new(&cpu, 1, 1).unwrap(),
        &CheckpointExtra::default(),
    )
    .unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "empty",
            Vec::new(),
            "not a safetensors file: it holds 0 bytes",
        ),
        (
            "garbage",
            b"this is not a checkpoint at all".to_vec(),
            "truncated, or not a safetensors file: its first 8 bytes announce a header of",
        ),
        (
            "header-past-the-end",
            1000u64
                .to_le_bytes()
                .iter()
                .copied()
                .chain(*b"{}")
                .collect(),
            "its first 8 bytes announce a header of 1000 bytes, but the file holds 10",
        ),
        (
            "truncated-header",
            bytes[..8 + header_len / 2].to_vec(),
            "truncated, or not a safetensors file",
        ),
        (
            "truncated-data",
            bytes[..bytes.len() - 10].to_vec(),
            "truncated or damaged: the tensor data that the header describes does not match",
        ),
        (
            "bad-json",
            raw_safetensors("{oops", b""),
            "not a safetensors file: its header is not safetensors JSON",
        ),
        (
            "bad-kiln-metadata",
            raw_safetensors(r#"{"__metadata__":{"format":"kiln","epoch":"three"}}"#, b""),
            "the metadata's epoch is `three`, not a non-negative integer",
        ),
    ];
    for (name, contents, expected) in cases {
        let path = dir.join(format!("{name}.safetensors"));
        std::fs::write(&path, contents).unwrap();
        let mut model = TorchCnn::new(&cpu, 1, 2).unwrap();
        let before = Weights::of(&model).unwrap();
        let err = checkpoint::load_weights(&path, &mut model).unwrap_err();
        let detail = checkpoint_detail(&err, &path);
        assert!(detail.contains(expected), "{name}: {detail}");
        assert_eq!(Weights::of(&model).unwrap(), before, "{name}");
        assert!(checkpoint::read_info(&path).is_err(), "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let dir = scratch("missing");
    let path = dir.join("absent.safetensors");
    let mut model = TorchCnn::new(&cpu(), 1, 2).unwrap();
    let err = checkpoint::load_weights(&path, &mut model).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path: p, source }
            if p == &path && source.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
    assert!(err.to_string().contains("absent.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_save_keeps_the_previous_checkpoint_and_leaves_no_temporary_file() {
    let dir = scratch("failed-save");
    let cpu = cpu();
    let model = TorchCnn::new(&cpu, 1, 1).unwrap();
    let path = dir.join("ckpt.safetensors");
    checkpoint::save(&path, &model, &CheckpointExtra::default()).unwrap();
    let previous = std::fs::read(&path).unwrap();

    // The target is a non-empty directory: the temporary file is written in full,
    // then the rename fails.
    let blocked = dir.join("blocked.safetensors");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), b"keep").unwrap();
    let err = checkpoint::save(&blocked, &model, &CheckpointExtra::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path: p, .. } if p == &blocked),
        "{err:?}"
    );
    assert_eq!(std::fs::read(blocked.join("keep")).unwrap(), b"keep");

    // The directory does not exist: nothing can be written.
    let nowhere = dir.join("no-such-dir").join("ckpt.safetensors");
    let err = checkpoint::save(&nowhere, &model, &CheckpointExtra::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path: p, .. } if p == &nowhere),
        "{err:?}"
    );

    assert_eq!(std::fs::read(&path).unwrap(), previous);
    assert_eq!(files_in(&dir), ["blocked.safetensors", "ckpt.safetensors"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn optimizer_state_that_does_not_fit_changes_neither_model_nor_optimizer() {
    let dir = scratch("optimizer-mismatch");
    let cpu = cpu();
    let mut model = TorchCnn::new(&cpu, BATCH, 1).unwrap();
    let mut adam = Optimizer::new(Adam::default());
    train_step(&mut model, &mut adam);
    let with_state = dir.join("adam.safetensors");
    let extra = CheckpointExtra {
        optimizer: Some(&adam),
        ..CheckpointExtra::default()
    };
    checkpoint::save(&with_state, &model, &extra).unwrap();
    let weights_only = dir.join("weights.safetensors");
    checkpoint::save(&weights_only, &model, &CheckpointExtra::default()).unwrap();

    let mut target = TorchCnn::new(&cpu, BATCH, 2).unwrap();
    let before = Weights::of(&target).unwrap();

    // Another rule.
    let mut sgd = Optimizer::new(Sgd::default());
    let err = checkpoint::load(&with_state, &mut target, Some(&mut sgd)).unwrap_err();
    let detail = checkpoint_detail(&err, &with_state);
    assert!(
        detail.contains("state of a adam optimizer, not of sgd"),
        "{detail}"
    );

    // The same rule, other slots: AMSGrad keeps a third tensor.
    let mut amsgrad = Optimizer::new(Adam {
        amsgrad: true,
        ..Adam::default()
    });
    train_step(&mut target, &mut amsgrad);
    let before = (Weights::of(&target).unwrap(), before);
    let amsgrad_state = amsgrad.state(&cpu).unwrap();
    let err = checkpoint::load(&with_state, &mut target, Some(&mut amsgrad)).unwrap_err();
    let detail = checkpoint_detail(&err, &with_state);
    assert!(
        detail.contains("its optimizer state does not fit"),
        "{detail}"
    );
    assert_eq!(amsgrad.state(&cpu).unwrap(), amsgrad_state);

    // No state at all.
    let err = checkpoint::load(&weights_only, &mut target, Some(&mut amsgrad)).unwrap_err();
    let detail = checkpoint_detail(&err, &weights_only);
    assert!(detail.contains("holds no optimizer state"), "{detail}");
    assert_eq!(amsgrad.state(&cpu).unwrap(), amsgrad_state);
    assert_eq!(Weights::of(&target).unwrap(), before.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_weights_snapshot_is_reused_and_restored() {
    let cpu = cpu();
    let mut model = TorchCnn::new(&cpu, BATCH, 5).unwrap();
    let mut optimizer = Optimizer::new(Adam::default());
    let mut best = Weights::of(&model).unwrap();
    assert_eq!(best.len(), 4);
    let x = batch();
    let at_best = outputs(&mut model, &x);
    train_step(&mut model, &mut optimizer);
    let later = Weights::of(&model).unwrap();
    assert_ne!(later, best);
    best.restore(&mut model).unwrap();
    assert_eq!(bits(&outputs(&mut model, &x)), bits(&at_best));
    best.copy_from(&model).unwrap();
    later.restore(&mut model).unwrap();
    best.copy_from(&model).unwrap();
    assert_eq!(best, later);
}

/// The expected input and output of `tests/oracle/pytorch_cnn.safetensors`.
fn oracle_io() -> (Vec<f32>, Vec<f32>) {
    let text = std::fs::read_to_string(oracle_dir().join("pytorch_cnn_io.json")).unwrap();
    let io: serde_json::Value = serde_json::from_str(&text).unwrap();
    let floats = |key: &str| -> Vec<f32> {
        io[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    (floats("input"), floats("output"))
}

fn oracle_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle")
}

#[test]
fn weights_exported_from_pytorch_give_pytorchs_outputs() {
    let path = oracle_dir().join("pytorch_cnn.safetensors");
    let (x, expected) = oracle_io();
    assert_eq!(x.len(), BATCH * SAMPLE);
    let mut model = TorchCnn::new(&cpu(), BATCH, 0).unwrap();
    let info = checkpoint::load_weights(&path, &mut model).unwrap();
    assert_eq!(info.model, None, "PyTorch's file carries no kiln metadata");
    assert_eq!(info.metadata["format"], "pt");
    let got = outputs(&mut model, &x);
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert!((g - e).abs() <= 1e-5, "output {i}: kiln {g}, PyTorch {e}");
    }
}

/// A Python that has torch and safetensors: `KILN_PYTHON`, else `python3`.
fn python_with_torch() -> Result<String, String> {
    let python = std::env::var("KILN_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&python)
        .args(["-c", "import torch, safetensors.torch"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(format!(
            "{python} lacks torch or safetensors ({}); set KILN_PYTHON to a Python that has both",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => Err(format!("cannot run {python}: {e}")),
    }
}

#[test]
fn a_kiln_checkpoint_loads_in_pytorch_and_gives_kilns_outputs() {
    let python = match python_with_torch() {
        Ok(python) => python,
        Err(why) => {
            writeln!(
                std::io::stderr(),
                "skipped: kiln -> PyTorch checkpoint check: {why}"
            )
            .unwrap();
            return;
        }
    };
    let dir = scratch("to-pytorch");
    let cpu = cpu();
    let mut model = TorchCnn::new(&cpu, BATCH, 9).unwrap();
    let mut optimizer = Optimizer::new(Adam::default());
    for _ in 0..2 {
        train_step(&mut model, &mut optimizer);
    }
    let x = batch();
    let y = outputs(&mut model, &x);
    let history = history();
    let path = dir.join("kiln.safetensors");
    let extra = CheckpointExtra {
        optimizer: Some(&optimizer),
        epoch: Some(2),
        history: Some(&history),
    };
    checkpoint::save(&path, &model, &extra).unwrap();

    let expected = serde_json::json!({
        "input": x,
        "output": y,
        "format": "kiln",
        "model": "TorchCnn",
        "epoch": "2",
        "history_names": [
            ["loss", "accuracy", "val_loss"],
            ["loss", "accuracy", "val_loss"],
            ["loss", "accuracy", "val_loss"],
        ],
        "losses": [1.0986122886681098, 0.731_234_5, "NaN"],
        "algorithm": "adam",
        "step": 2,
    });
    let expected_path = dir.join("expected.json");
    std::fs::write(&expected_path, expected.to_string()).unwrap();
    let out = Command::new(&python)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(oracle_dir().join("load_in_pytorch.py"))
        .arg(&path)
        .arg(&expected_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "PyTorch disagrees:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One Adam step of `model` on a fixed batch.
fn norm_step(model: &mut NormCnn, optimizer: &mut Optimizer<Cpu>) {
    let mut criterion = model
        .criterion(Loss::sparse_categorical_crossentropy().from_logits(true))
        .unwrap();
    let output = model.forward_host(&batch(), Mode::Train).unwrap();
    criterion
        .compute(&output, BatchTargets::Labels(&[0, 2, 1, 1, 0]), None)
        .unwrap();
    model.zero_grad().unwrap();
    model
        .backward(criterion.gradient(), criterion.grad_at())
        .unwrap();
    optimizer.step(model).unwrap();
}

#[test]
fn running_statistics_are_saved_restored_and_never_optimised() {
    let dir = scratch("batch-norm");
    let path = dir.join("norm.safetensors");
    let cpu = cpu();
    let mut model = NormCnn::new(&cpu, BATCH, 1).unwrap();
    let mut optimizer = Optimizer::new(Adam::default());
    for _ in 0..3 {
        norm_step(&mut model, &mut optimizer);
    }
    // Inference reads the running statistics, so equal outputs need them restored.
    let x = batch();
    let expected = outputs(&mut model, &x);
    let extra = CheckpointExtra {
        optimizer: Some(&optimizer),
        ..CheckpointExtra::default()
    };
    checkpoint::save(&path, &model, &extra).unwrap();
    let weights = Weights::of(&model).unwrap();
    let names: Vec<&str> = weights.names().collect();
    assert_eq!(
        names,
        [
            "conv1.weight",
            "conv1.bias",
            "bn1.weight",
            "bn1.bias",
            "out.weight",
            "out.bias",
            "bn1.running_mean",
            "bn1.running_var",
        ]
    );
    let (_, var) = weights.get("bn1.running_var").unwrap();
    assert!(
        var.iter().all(|v| *v != 1.0),
        "the running variance moved: {var:?}"
    );
    let state = optimizer.state(&cpu).unwrap();
    assert!(
        state
            .tensors
            .iter()
            .all(|(name, _)| !name.contains("running")),
        "{:?}",
        state.tensors.iter().map(|t| &t.0).collect::<Vec<_>>()
    );

    let mut loaded = NormCnn::new(&cpu, BATCH, 2).unwrap();
    let mut fresh = Optimizer::new(Adam::default());
    checkpoint::load(&path, &mut loaded, Some(&mut fresh)).unwrap();
    assert_eq!(bits(&outputs(&mut loaded, &x)), bits(&expected));
    assert_eq!(Weights::of(&loaded).unwrap(), weights);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_without_running_statistics_says_which_are_missing() {
    let dir = scratch("no-batch-norm");
    let (plain, norm) = (dir.join("plain.safetensors"), dir.join("norm.safetensors"));
    let cpu = cpu();
    let torch = TorchCnn::new(&cpu, 1, 1).unwrap();
    checkpoint::save(&plain, &torch, &CheckpointExtra::default()).unwrap();
    let mut model = NormCnn::new(&cpu, 1, 2).unwrap();
    let before = Weights::of(&model).unwrap();
    let err = checkpoint::load_weights(&plain, &mut model).unwrap_err();
    let detail = checkpoint_detail(&err, &plain);
    for expected in [
        "bn1.weight [4] is missing",
        "bn1.bias [4] is missing",
        "bn1.running_mean [4] is missing",
        "bn1.running_var [4] is missing",
    ] {
        assert!(detail.contains(expected), "`{expected}` not in: {detail}");
    }
    assert_eq!(Weights::of(&model).unwrap(), before);

    // The reverse: the running statistics are not in the other model.
    checkpoint::save(&norm, &model, &CheckpointExtra::default()).unwrap();
    let mut other = TorchCnn::new(&cpu, 1, 3).unwrap();
    let before = Weights::of(&other).unwrap();
    let err = checkpoint::load_weights(&norm, &mut other).unwrap_err();
    let detail = checkpoint_detail(&err, &norm);
    assert!(
        detail.contains("bn1.running_mean [4] is not in the model"),
        "{detail}"
    );
    assert_eq!(Weights::of(&other).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn running_statistics_load_in_pytorch_as_buffers() {
    let python = match python_with_torch() {
        Ok(python) => python,
        Err(why) => {
            writeln!(
                std::io::stderr(),
                "skipped: kiln -> PyTorch batch normalisation check: {why}"
            )
            .unwrap();
            return;
        }
    };
    let dir = scratch("norm-to-pytorch");
    let cpu = cpu();
    let mut model = NormCnn::new(&cpu, BATCH, 5).unwrap();
    let mut optimizer = Optimizer::new(Adam::default());
    for _ in 0..3 {
        norm_step(&mut model, &mut optimizer);
    }
    let x = batch();
    let y = outputs(&mut model, &x);
    let path = dir.join("norm.safetensors");
    checkpoint::save(&path, &model, &CheckpointExtra::default()).unwrap();
    let expected_path = dir.join("expected.json");
    let expected = serde_json::json!({ "input": x, "output": y });
    std::fs::write(&expected_path, expected.to_string()).unwrap();
    let out = Command::new(&python)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(oracle_dir().join("load_batch_norm_in_pytorch.py"))
        .arg(&path)
        .arg(&expected_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "PyTorch disagrees:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
