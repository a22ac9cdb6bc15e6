//! Gradient accumulation in `fit`: micro-batches of `b` whose gradients add up over
//! `n` of them train as batches of `n * b`, the short last update of an epoch
//! included; and every layer kind's backward pass adds to its parameter gradients,
//! which is what accumulation rests on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kiln::data::{InMemory, Inputs, Pipeline, Targets};
use kiln::prelude::*;
use kiln_optim::ParamGroup;

mod common;
use common::{Tensors, host_tensors};

kiln::model! {
    /// A CNN whose layers treat samples apart (no batch normalisation).
    pub struct Digits {
        input: [28, 28, 1],
        conv: Conv2d(filters = 8, kernel = 3, stride = 2, activation = relu),
        pool: MaxPool2d(2),
        flat: Flatten,
        hidden: Dense(16, tanh),
        out: Dense(10, softmax),
    }
}

kiln::model! {
    /// Every sequence kind with parameters.
    pub struct Sequences {
        input: tokens[6] of 12,
        embed: Embedding(12, 5),
        conv: Conv1d(4, 3, relu, padding = same),
        lstm: Lstm(3, return_sequences = true),
        mix: TimeDense(4, tanh),
        flat: Flatten,
        out: Dense(2),
    }
}

kiln::model! {
    /// A causal pre-norm Transformer block over learned positions.
    pub struct Gpt {
        input: tokens[6] of 12,
        embed: Embedding(12, 8),
        position: PositionEmbedding(6),
        attention: Residual {
            ln1: LayerNorm,
            attn: MultiHeadAttention(2, causal = true),
        },
        mlp: Residual {
            ln2: LayerNorm,
            fc: TimeDense(16, gelu),
            proj: TimeDense(8),
        },
        ln: LayerNorm,
        head: TimeDense(12),
        flat: Flatten,
        out: Dense(2),
    }
}

kiln::model! {
    /// Images with batch normalisation.
    pub struct Normalised {
        input: [6, 6, 2],
        conv: Conv2d(3, 3),
        bn: BatchNorm(relu, convention = pytorch),
        flat: Flatten,
        out: Dense(2),
    }
}

/// 100 digits: with micro-batches of 8 over 4 (32 samples an update), an epoch is 12
/// micro-batches of 8 and one of 4, so 3 updates of 32 samples and a last of 4.
fn digits() -> InMemory {
    let (train, _) = kiln::data::mnist::embedded().unwrap();
    train.select(&(0..100).collect::<Vec<_>>()).unwrap()
}

/// AdamW with decay on the kernels only, a warm-up and cosine decay, clipping by
/// global norm: what accumulation has to compose with.
fn optimizer() -> Optimizer<Cpu> {
    Optimizer::new(AdamW {
        weight_decay: 0.1,
        ..AdamW::pytorch()
    })
    .schedule(CosineDecay::nanogpt(3e-3, 2, 6, 3e-4))
    .clip_global_norm(1.0)
    .group(ParamGroup::new().names(["*.bias"]).weight_decay(0.0))
}

/// 100 sequences of 6 tokens of 12, with 2 values to fit each.
fn sequences() -> InMemory {
    let tokens = (0..100 * 6)
        .map(|i| ((i * 7 + i / 5) % 12) as f32)
        .collect();
    let values = (0..100 * 2).map(|i| (i as f32 * 0.37).sin()).collect();
    InMemory::new(
        vec![6],
        Inputs::F32(tokens),
        Targets::Real { values, width: 2 },
    )
    .unwrap()
}

/// Trains `Digits` for 2 epochs with batches of `batch` and `accumulate` of them an
/// update: the weights, the history's losses and accuracies, and the updates done.
fn train(batch: usize, accumulate: usize) -> (Tensors, Vec<f64>, u64) {
    let model = Digits::new(&Cpu::with_threads(2).unwrap(), batch, 3).unwrap();
    let loss = Loss::sparse_categorical_crossentropy();
    let pipeline = Pipeline::new().scale(1.0 / 255.0);
    train_model(model, digits(), loss, pipeline, accumulate)
}

/// Trains `model` (built for its batch) on `data` for 2 epochs with `accumulate`
/// batches an update.
fn train_model<M: Model<Cpu>>(
    model: M,
    data: InMemory,
    loss: Loss,
    pipeline: Pipeline,
    accumulate: usize,
) -> (Tensors, Vec<f64>, u64) {
    let batch = model.max_batch();
    let mut trainer = Trainer::new(model, loss, optimizer())
        .unwrap()
        .metrics([Metric::Accuracy]);
    let options = FitOptions::new(2, batch)
        .seed(11)
        .accumulate(accumulate)
        .pipeline(pipeline)
        .verbose(Verbosity::Silent);
    let history = trainer.fit(data, options).unwrap();
    let weights = host_tensors(trainer.model(), false);
    let figures = ["loss", "accuracy"]
        .iter()
        .flat_map(|name| history.series(name))
        .collect();
    (weights, figures, trainer.optimizer().iterations())
}

/// The largest difference between two sets of tensors, relative to the value or to
/// 1 near zero.
fn largest_difference(a: &Tensors, b: &Tensors) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|((key, a), (_, b))| {
            assert_eq!(a.len(), b.len(), "{key}");
            a.iter().zip(b)
        })
        .map(|(x, y)| f64::from((x - y).abs()) / f64::from(x.abs()).max(1.0))
        .fold(0.0, f64::max)
}

#[test]
fn micro_batches_train_as_one_large_batch_tail_included() {
    let (large, large_figures, large_updates) = train(32, 1);
    let (micro, micro_figures, micro_updates) = train(8, 4);
    assert_eq!(
        large_updates, 8,
        "4 updates an epoch, the last over 4 samples"
    );
    assert_eq!(micro_updates, large_updates, "the schedule counts updates");
    let moved = largest_difference(&large, &train(32, 1).0);
    assert_eq!(moved, 0.0, "a run repeats itself exactly");
    let difference = largest_difference(&large, &micro);
    eprintln!("accumulate(4) x 8 against batches of 32: weights within {difference:.1e}");
    assert!(difference <= 1e-6, "weights differ by {difference}");
    for (l, m) in large_figures.iter().zip(&micro_figures) {
        assert!(
            (l - m).abs() <= 1e-5 * l.abs().max(1.0),
            "{large_figures:?} vs {micro_figures:?}"
        );
    }
    // Without accumulation, batches of 8 take other steps.
    let (plain, _, plain_updates) = train(8, 1);
    assert_eq!(plain_updates, 26);
    assert!(largest_difference(&large, &plain) > 1e-3);
}

/// `tensors` less the attention's key bias (`qkv_bias[8..16]`): its exact gradient
/// is zero (a softmax does not change when the same `q . b_k` is added to every
/// score of a row), so what it gets is rounding noise, which Adam scales up to
/// steps of the learning rate's size in any direction.
fn without_key_bias(mut tensors: Tensors) -> Tensors {
    for (key, values) in &mut tensors {
        if key == "attention.attn.qkv_bias" {
            values.drain(8..16);
        }
    }
    tensors
}

#[test]
fn a_transformer_accumulates_as_one_large_batch() {
    let cpu = Cpu::with_threads(2).unwrap();
    let run = |batch, accumulate| {
        let model = Gpt::new(&cpu, batch, 5).unwrap();
        let loss = Loss::mean_squared_error();
        train_model(model, sequences(), loss, Pipeline::new(), accumulate)
    };
    let (large, large_figures, large_updates) = run(32, 1);
    let (micro, micro_figures, micro_updates) = run(8, 4);
    assert_eq!((large_updates, micro_updates), (8, 8));
    let difference = largest_difference(&without_key_bias(large.clone()), &without_key_bias(micro));
    eprintln!("Transformer, accumulate(4) x 8 against batches of 32: within {difference:.1e}");
    assert!(difference <= 1e-6, "weights differ by {difference}");
    for (l, m) in large_figures.iter().zip(&micro_figures) {
        assert!((l - m).abs() <= 1e-5 * l.abs().max(1.0));
    }
    assert!(largest_difference(&large, &run(8, 1).0) > 1e-3);
}

#[test]
fn accumulating_nothing_is_an_error() {
    let cpu = Cpu::with_threads(1).unwrap();
    let model = Digits::new(&cpu, 8, 3).unwrap();
    let mut trainer =
        Trainer::new(model, Loss::sparse_categorical_crossentropy(), optimizer()).unwrap();
    let options = FitOptions::new(1, 8)
        .accumulate(0)
        .verbose(Verbosity::Silent);
    let err = trainer.fit(digits(), options).unwrap_err();
    assert!(
        err.to_string().contains("accumulate must be at least 1"),
        "{err}"
    );
}

/// Runs two backward passes without zeroing between them: every parameter gradient
/// must be twice the first pass's (to the rounding of the sum).
fn backward_adds<M: Model<Cpu>>(
    mut model: M,
    inputs: &[f32],
    targets: BatchTargets<'_>,
    loss: Loss,
) {
    let cpu = model.backend().clone();
    let mut criterion =
        Criterion::new(loss, &cpu, model.max_batch(), M::OUTPUT_ACTIVATION).unwrap();
    let mut pass = |model: &mut M| {
        let output = model.forward_host(inputs, Mode::Train).unwrap();
        criterion.compute(&output, targets, None).unwrap();
        model
            .backward(criterion.gradient(), criterion.grad_at())
            .unwrap();
    };
    model.zero_grad().unwrap();
    pass(&mut model);
    let once = host_tensors(&model, true);
    pass(&mut model);
    let twice = host_tensors(&model, true);
    assert!(once.len() >= 4);
    for ((key, a), (_, b)) in once.iter().zip(&twice) {
        assert!(a.iter().any(|v| *v != 0.0), "{key}: no gradient");
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            assert!(
                (2.0 * a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{key}[{i}]: {a} once, {b} after two passes"
            );
        }
    }
}

#[test]
fn every_layer_kind_adds_to_its_parameter_gradients() {
    let cpu = Cpu::with_threads(2).unwrap();
    let batch = 4;
    let images: Vec<f32> = (0..batch * 28 * 28)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    backward_adds(
        Digits::new(&cpu, batch, 1).unwrap(),
        &images,
        BatchTargets::Labels(&labels),
        Loss::sparse_categorical_crossentropy(),
    );
    let tokens: Vec<f32> = (0..batch * 6).map(|i| ((i * 7 + 3) % 12) as f32).collect();
    let values: Vec<f32> = (0..batch * 2).map(|i| (i as f32 * 0.5).cos()).collect();
    backward_adds(
        Sequences::new(&cpu, batch, 1).unwrap(),
        &tokens,
        BatchTargets::Values(&values),
        Loss::mean_squared_error(),
    );
    backward_adds(
        Gpt::new(&cpu, batch, 1).unwrap(),
        &tokens,
        BatchTargets::Values(&values),
        Loss::mean_squared_error(),
    );
    let small: Vec<f32> = (0..batch * 6 * 6 * 2)
        .map(|i| (i as f32 * 0.21).cos())
        .collect();
    backward_adds(
        Normalised::new(&cpu, batch, 1).unwrap(),
        &small,
        BatchTargets::Values(&values),
        Loss::mean_squared_error(),
    );
}

#[test]
fn a_micro_batch_is_its_share_of_the_large_batchs_gradient() {
    // Two parts of a batch, each launched as part of the whole, give the whole
    // batch's gradient; the loss stays each part's own.
    let cpu = Cpu::with_threads(1).unwrap();
    let inputs: Vec<f32> = (0..8 * 28 * 28).map(|i| (i as f32 * 0.13).sin()).collect();
    let labels: Vec<u32> = (0..8).map(|i| (i * 3) % 10).collect();
    let mut model = Digits::new(&cpu, 8, 2).unwrap();
    let mut criterion = model
        .criterion(Loss::sparse_categorical_crossentropy())
        .unwrap();
    let mut gradient = |parts: &[(usize, usize)]| {
        model.zero_grad().unwrap();
        let mut losses = Vec::new();
        for &(start, end) in parts {
            let x = &inputs[start * 784..end * 784];
            let t = &labels[start..end];
            let output = model.forward_host(x, Mode::Train).unwrap();
            criterion
                .launch_part(&output, BatchTargets::Labels(t), None, 8)
                .unwrap();
            losses.push(f64::from(criterion.value().unwrap()));
            model
                .backward(criterion.gradient(), criterion.grad_at())
                .unwrap();
        }
        (host_tensors(&model, true), losses)
    };
    let (whole, whole_loss) = gradient(&[(0, 8)]);
    let (parts, part_losses) = gradient(&[(0, 3), (3, 8)]);
    let difference = largest_difference(&whole, &parts);
    assert!(difference <= 1e-6, "gradients differ by {difference}");
    let mean = (3.0 * part_losses[0] + 5.0 * part_losses[1]) / 8.0;
    assert!(
        (mean - whole_loss[0]).abs() <= 1e-6,
        "{mean} vs {whole_loss:?}"
    );
}
