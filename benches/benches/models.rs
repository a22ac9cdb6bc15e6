//! The benchmark models end to end: the seed CNN (DESIGN.md section 1), a small
//! residual network and the batch-normalised ResNet-9 of the CIFAR-10 example. For each, one forward + backward, a whole training step (forward,
//! sparse categorical cross-entropy with its fused gradient, backward, Adam) and the
//! inference forward, at batch 64 and 256 (the ResNet-9 at 64 and 512, the batch of
//! its example), on 1 and 2 threads (or only on
//! `KILN_THREADS` when it is set), in groups `{model}_batch{batch}_threads{threads}`.
//! Throughput is in images. Run with `cargo xtask bench`, which also runs PyTorch on
//! the same workloads.

// A benchmark whose setup fails has nothing to measure: it stops with the error.
#![allow(clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln::losses;
use kiln::prelude::*;
use kiln_benches::{ResNet9, SeedCnn, SmallResNet, seed_images, seed_labels, train_step};

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

fn models(c: &mut Criterion) {
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
