//! The GPU (the first CUDA device; needs a build with `--features cuda`): kiln's
//! hand-written SGEMM on square products up to 4096^3, the seed CNN's training step
//! (forward, loss, backward, Adam), its forward + backward alone and its inference at
//! batch 64 and 1024, and the cost of one kernel launch (what a step of a few dozen
//! small kernels at batch 64 is bound by: the figure that says whether capturing the
//! step in a CUDA graph or fusing kernels pays).
//!
//! Kernels run asynchronously, so each measurement launches its iterations and then
//! waits for the GPU (`iter_custom`): the time is the GPU's, launch overhead included.
//! The training step reads its loss back every step, as a training loop does.
//! Without a GPU it says that it skipped and measures nothing. Run it with
//! `cargo xtask bench --gpu`, which also runs PyTorch on the same GPU (eager, and
//! cuBLAS for the products) for the ratios.

// A benchmark whose setup fails has nothing to measure: it stops with the error.
#![allow(clippy::expect_used)]

use std::io::Write as _;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use kiln::prelude::*;
use kiln_benches::{SeedCnn, seed_images, seed_labels, train_step};
use kiln_kernels::ops::matmul::{MatmulKernel, MatmulParams};

/// Batch sizes of the seed CNN: one that leaves most of the GPU idle, and one that fills it.
const BATCHES: [usize; 2] = [64, 1024];
/// Sides of the square products.
const SIDES: [u32; 3] = [1024, 2048, 4096];

/// Times `iters` runs of `f`, waiting for the GPU before and after.
fn timed(gpu: &Cuda, iters: u64, mut f: impl FnMut()) -> Duration {
    gpu.synchronize().expect("synchronize");
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    gpu.synchronize().expect("synchronize");
    start.elapsed()
}

fn sgemm(c: &mut Criterion, gpu: &Cuda) {
    let mut group = c.benchmark_group("gpu_sgemm");
    for side in SIDES {
        let len = side as usize * side as usize;
        let values: Vec<f32> = (0..len).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
        let mut a = gpu.alloc(len).expect("a");
        let mut b = gpu.alloc(len).expect("b");
        let mut out = gpu.alloc(len).expect("c");
        gpu.upload(&values, &mut a).expect("upload");
        gpu.upload(&values, &mut b).expect("upload");
        let p = MatmulParams {
            m: side,
            n: side,
            k: side,
            trans_a: false,
            trans_b: false,
            accumulate: false,
        };
        group.throughput(Throughput::Elements(2 * u64::from(side).pow(3)));
        group.sample_size(20);
        group.bench_function(format!("{side}"), |bench| {
            bench.iter_custom(|iters| {
                timed(gpu, iters, || {
                    gpu.matmul(&p, &a, &b, &mut out).expect("matmul")
                })
            });
        });
    }
    group.finish();
}

fn seed_cnn(c: &mut Criterion, gpu: &Cuda) {
    for batch in BATCHES {
        let mut model = SeedCnn::new(gpu, batch, 1).expect("model");
        let x = Tensor::<Rank3<32, 32, 3>, Cuda>::from_slice(gpu, batch, &seed_images(batch))
            .expect("x");
        let labels = seed_labels(batch);
        let mut loss = model
            .criterion(Loss::sparse_categorical_crossentropy())
            .expect("loss");
        let mut adam = Optimizer::new(Adam::default());
        // The first step compiles the kernels; the second counts what a step launches.
        train_step(&mut model, &x, &labels, &mut loss, &mut adam).expect("step");
        let before = gpu.launches();
        train_step(&mut model, &x, &labels, &mut loss, &mut adam).expect("step");
        println!(
            "gpu: {} kernel launches a training step at batch {batch}",
            gpu.launches() - before
        );
        let mut group = c.benchmark_group(format!("gpu_seed_cnn_batch{batch}"));
        group.throughput(Throughput::Elements(batch as u64));
        // 30 samples: criterion's 100 would take a minute at batch 1024.
        group.sample_size(30);
        group.bench_function("train_step", |bench| {
            bench.iter_custom(|iters| {
                timed(gpu, iters, || {
                    train_step(&mut model, &x, &labels, &mut loss, &mut adam).expect("step");
                })
            });
        });
        let grad = Tensor::<Rank1<10>, Cuda>::from_slice(gpu, batch, &vec![0.01; batch * 10])
            .expect("grad");
        group.bench_function("forward_backward", |bench| {
            bench.iter_custom(|iters| {
                timed(gpu, iters, || {
                    model.forward(&x, Mode::Train).expect("forward");
                    model.zero_grad().expect("zero_grad");
                    model
                        .backward(&grad, GradAt::PreActivation)
                        .expect("backward");
                })
            });
        });
        group.bench_function("inference", |bench| {
            bench.iter_custom(|iters| {
                timed(gpu, iters, || {
                    model.forward(&x, Mode::Eval).expect("forward");
                })
            });
        });
        group.finish();
    }
}

/// One launch of the smallest kernel (a fill of one value), back to back.
fn launch(c: &mut Criterion, gpu: &Cuda) {
    let mut one = gpu.alloc(1).expect("buffer");
    let mut group = c.benchmark_group("gpu_launch");
    group.throughput(Throughput::Elements(1));
    group.bench_function("fill_one_value", |bench| {
        bench.iter_custom(|iters| timed(gpu, iters, || gpu.fill(&mut one, 1, 1.0).expect("fill")));
    });
    group.finish();
}

fn main() {
    let gpu = match Cuda::new(0) {
        Ok(gpu) => gpu,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "skipped: no CUDA device ({e})");
            return;
        }
    };
    println!("gpu: {}", gpu.name());
    let mut c = Criterion::default().configure_from_args();
    launch(&mut c, &gpu);
    sgemm(&mut c, &gpu);
    seed_cnn(&mut c, &gpu);
    c.final_summary();
}
