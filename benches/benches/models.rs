//! The benchmark models end to end: the seed CNN (DESIGN.md section 1), a small
//! residual network and the batch-normalised ResNet-9 of the CIFAR-10 example. For each, one forward + backward, a whole training step (forward,
//! sparse categorical cross-entropy with its fused gradient, backward, Adam) and the
//! inference forward, at batch 64 and 256 (the ResNet-9 at 64 and 512, the batch of
//! its example), on 1 and 2 threads (or only on
//! `KILN_THREADS` when it is set), in groups `{model}_batch{batch}_threads{threads}`.
//! Throughput is in images. Also the character language model of the `char_lstm`
//! example: its training step at batch 64 (`char_lstm_batch64_threads{t}`, in tokens:
//! 64 windows of 64 characters) and generation, one character at a time with the
//! state carried (`char_lstm_generate_batch1_threads{t}/inference`, in tokens). Run
//! with `cargo xtask bench`, which also runs PyTorch on the same workloads.

// A benchmark whose setup fails has nothing to measure: it stops with the error.
#![allow(clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln::losses::{self, SequenceCriterion};
use kiln::prelude::*;
use kiln_benches::{
    CharLstm, CharLstmStep, LSTM_VOCABULARY, LSTM_WINDOW, ResNet9, SeedCnn, SmallResNet,
    lstm_tokens, seed_images, seed_labels, train_step,
};

fn thread_counts() -> Vec<usize> {
    match std::env::var("KILN_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(t) => vec![t],
        None => vec![1, 2],
    }
}

/// The three workloads of model `M`, named `name` in the groups' names, at each of
/// `batches` on each thread count.
fn bench_model<M: Model<Cpu>>(c: &mut Criterion, name: &str, batches: [usize; 2]) {
    for threads in thread_counts() {
        let cpu = Cpu::with_threads(threads).expect("threads");
        for batch in batches {
            let mut model = M::new(&cpu, batch, 1).expect("model");
            let (images, labels) = (seed_images(batch), seed_labels(batch));
            let x = Tensor::<M::Input, Cpu>::from_slice(&cpu, batch, &images).expect("x");
            let outputs = batch * M::OUTPUT_SHAPE.size();
            let grad = Tensor::<M::Output, Cpu>::from_slice(&cpu, batch, &vec![0.01; outputs])
                .expect("grad");
            let mut loss = losses::Criterion::new(
                Loss::sparse_categorical_crossentropy(),
                &cpu,
                batch,
                M::OUTPUT_ACTIVATION,
            )
            .expect("loss");
            let mut adam = Optimizer::new(Adam::default());

            let mut group = c.benchmark_group(format!("{name}_batch{batch}_threads{threads}"));
            group.throughput(Throughput::Elements(batch as u64));
            if batch >= 256 {
                group.sample_size(20);
            }
            group.bench_function("forward_backward", |b| {
                b.iter(|| {
                    model.forward(&x, Mode::Train).expect("forward");
                    model.zero_grad().expect("zero_grad");
                    model
                        .backward(&grad, GradAt::PreActivation)
                        .expect("backward");
                });
            });
            group.bench_function("train_step", |b| {
                b.iter(|| {
                    train_step(&mut model, &x, &labels, &mut loss, &mut adam).expect("step");
                });
            });
            group.bench_function("inference", |b| {
                b.iter(|| {
                    model.forward(&x, Mode::Eval).expect("forward");
                });
            });
            group.finish();
        }
    }
}

/// The language model's training step (forward, the loss over every step read back,
/// backward, Adam) at batch 64, and generation at batch 1: one character in, the
/// next one's distribution out, the LSTM's state kept.
fn bench_char_lstm(c: &mut Criterion) {
    for threads in thread_counts() {
        let cpu = Cpu::with_threads(threads).expect("threads");
        let batch = 64;
        let mut model = CharLstm::new(&cpu, batch, 1).expect("model");
        let (ids, next) = lstm_tokens(batch * LSTM_WINDOW);
        let x = Tensor::<<CharLstm as Model<Cpu>>::Input, Cpu>::from_slice(&cpu, batch, &ids)
            .expect("x");
        let mut loss = SequenceCriterion::<LSTM_WINDOW, LSTM_VOCABULARY, Cpu>::new(
            Loss::sparse_categorical_crossentropy(),
            &cpu,
            batch,
            <CharLstm>::OUTPUT_ACTIVATION,
        )
        .expect("loss");
        let mut adam = Optimizer::new(Adam::pytorch());
        let mut group = c.benchmark_group(format!("char_lstm_batch{batch}_threads{threads}"));
        group.throughput(Throughput::Elements((batch * LSTM_WINDOW) as u64));
        group.sample_size(20);
        group.bench_function("train_step", |b| {
            b.iter(|| {
                let out = model.forward(&x, Mode::Train).expect("forward");
                loss.compute(&out, &next, None).expect("loss");
                model.zero_grad().expect("zero_grad");
                model
                    .backward(loss.gradient(), loss.grad_at())
                    .expect("backward");
                adam.step(&mut model).expect("step");
            });
        });
        group.finish();

        let mut step = CharLstmStep::new(&cpu, 1, 1).expect("model");
        let mut group = c.benchmark_group(format!("char_lstm_generate_batch1_threads{threads}"));
        group.throughput(Throughput::Elements(1));
        let mut id = 0u32;
        group.bench_function("inference", |b| {
            b.iter(|| {
                let out = step
                    .forward_host(&[id as f32], Mode::Eval)
                    .expect("forward");
                std::hint::black_box(&out);
                id = (id + 1) % LSTM_VOCABULARY as u32;
            });
        });
        group.finish();
    }
}

fn models(c: &mut Criterion) {
    bench_char_lstm(c);
    bench_model::<SeedCnn<Cpu>>(c, "seed_cnn", [64, 256]);
    bench_model::<SmallResNet<Cpu>>(c, "small_resnet", [64, 256]);
    bench_model::<ResNet9<Cpu>>(c, "resnet9", [64, 512]);
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = models
}
criterion_main!(benches);
