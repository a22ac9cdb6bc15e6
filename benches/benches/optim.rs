//! The optimizer update over one million parameters against a plain copy of the same
//! memory (the machine's practical bandwidth), and the loss of a seed-sized batch.
//! Throughput is in bytes moved (optimizers, copy) or samples (loss). Run with
//! `cargo xtask bench`.

// A benchmark whose setup fails has nothing to measure: it stops with the error.
#![allow(clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln::prelude::*;
use kiln::shape::{Activation, Shape};
use kiln_kernels::CpuBuffer;
use kiln_kernels::{ParamMut, ParamRef, Trainable, ViewParams, VisitParams};

/// One million parameters, as one tensor.
const PARAMS: usize = 1 << 20;
const F32: u64 = 4;

/// One tensor and its gradient, for the optimizer to update.
struct Flat {
    cpu: Cpu,
    value: CpuBuffer,
    grad: CpuBuffer,
}

impl Trainable<Cpu> for Flat {
    fn backend(&self) -> &Cpu {
        &self.cpu
    }

    fn parameters<'a>(&'a self, f: ViewParams<'_, 'a, Cpu>) -> kiln::kernels::Result<()> {
        f(ParamRef {
            layer: "flat",
            kind: "Tensor",
            name: "weight",
            shape: Shape::new(&[PARAMS]),
            value: &self.value,
            grad: &self.grad,
        })
    }

    fn visit_parameters<'a>(
        &'a mut self,
        f: VisitParams<'_, 'a, Cpu>,
    ) -> kiln::kernels::Result<()> {
        f(ParamMut {
            layer: "flat",
            kind: "Tensor",
            name: "weight",
            shape: Shape::new(&[PARAMS]),
            value: &mut self.value,
            grad: &mut self.grad,
        })
    }
}

fn threads() -> usize {
    std::env::var("KILN_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn optimizers(c: &mut Criterion) {
    let threads = threads();
    let cpu = Cpu::with_threads(threads).expect("threads");
    let values: Vec<f32> = (0..PARAMS).map(|i| (i as f32 * 1e-3).sin()).collect();
    let grads: Vec<f32> = (0..PARAMS).map(|i| (i as f32 * 7e-4).cos()).collect();
    let mut flat = Flat {
        value: cpu.alloc_from(&values).expect("values"),
        grad: cpu.alloc_from(&grads).expect("grads"),
        cpu: cpu.clone(),
    };
    let mut group = c.benchmark_group(format!("optimizer_1m_threads{threads}"));
    // A copy reads and writes every value once: the bandwidth ceiling.
    group.throughput(Throughput::Bytes(2 * F32 * PARAMS as u64));
    let mut dst = cpu.alloc(PARAMS).expect("dst");
    group.bench_function("copy", |b| {
        b.iter(|| cpu.copy(&flat.grad, &mut dst, PARAMS).expect("copy"));
    });
    // Adam reads parameter, gradient and two moments, and writes three of them back.
    group.throughput(Throughput::Bytes(7 * F32 * PARAMS as u64));
    let mut adam = Optimizer::new(Adam::default());
    adam.step(&mut flat).expect("first step");
    group.bench_function("adam", |b| {
        b.iter(|| adam.step(&mut flat).expect("adam"));
    });
    // SGD with momentum: parameter, gradient, buffer in; parameter, buffer out.
    group.throughput(Throughput::Bytes(5 * F32 * PARAMS as u64));
    let mut sgd = Optimizer::new(Sgd::default().momentum(0.9));
    sgd.step(&mut flat).expect("first step");
    group.bench_function("sgd_momentum", |b| {
        b.iter(|| sgd.step(&mut flat).expect("sgd"));
    });
    group.finish();
}

fn losses(c: &mut Criterion) {
    let cpu = Cpu::with_threads(threads()).expect("threads");
    const BATCH: usize = 64;
    let logits: Vec<f32> = (0..BATCH * 10)
        .map(|i| (i as f32 * 0.37).sin() * 3.0)
        .collect();
    let labels: Vec<u32> = (0..BATCH as u32).map(|i| i * 7 % 10).collect();
    let output = Tensor::<Rank1<10>, Cpu>::from_slice(&cpu, BATCH, &logits).expect("output");
    let mut group = c.benchmark_group("loss_batch64");
    group.throughput(Throughput::Elements(BATCH as u64));
    // The seed's pairing (softmax output, fused gradient) and the logits form.
    let cases = [
        (
            "sparse_categorical_crossentropy",
            Loss::sparse_categorical_crossentropy(),
            Some(Activation::Softmax),
        ),
        (
            "sparse_categorical_crossentropy_from_logits",
            Loss::sparse_categorical_crossentropy().from_logits(true),
            None,
        ),
    ];
    for (name, loss, activation) in cases {
        let mut criterion =
            kiln::losses::Criterion::<Rank1<10>, Cpu>::new(loss, &cpu, BATCH, activation)
                .expect("criterion");
        group.bench_function(name, |b| {
            b.iter(|| {
                criterion
                    .compute(&output.view(), BatchTargets::Labels(&labels), None)
                    .expect("loss")
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = optimizers, losses
}
criterion_main!(benches);
