//! The seed CNN's layers at batch 64: each convolution forward and backward (with
//! GFLOP/s), the pools, and the dense layers. Run with `cargo xtask bench`.
//!
//! Backward runs from the pre-activation gradient (the activation's own pass is
//! measured with the whole model in `seed_cnn`).
//!
//! Criterion's "elements" throughput is used for FLOPs, so its `Gelem/s` reads as
//! GFLOP/s.

// A benchmark whose setup fails has nothing to measure: it stops with the error.
#![allow(clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln::kernels::rng::Rng;
use kiln::nn::{Conv2d, Dense, GradAt, Layer, Mode, Pool2d};
use kiln::shape::{Activation, Conv2dSpec, DenseSpec, LayerSpec, Padding, Pool2dSpec, Shape};
use kiln::{Cpu, Storage};

const BATCH: usize = 64;

fn threads() -> usize {
    std::env::var("KILN_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn bench_layer<L: Layer<Cpu>>(
    c: &mut Criterion,
    name: &str,
    spec: LayerSpec,
    input: &[usize],
    needs_dx: bool,
) {
    let cpu = Cpu::with_threads(threads()).expect("threads");
    let input = Shape::new(input);
    let output = spec.output_shape(&input).expect("shape");
    let mut layer = L::build(&cpu, &spec, input, BATCH, &mut Rng::new(1)).expect("layer");
    let mut rng = Rng::new(2);
    let x_host: Vec<f32> = (0..BATCH * input.size())
        .map(|_| rng.uniform_in(-1.0, 1.0))
        .collect();
    let x = cpu.alloc_from(&x_host).expect("x");
    let mut y = cpu.alloc(BATCH * output.size()).expect("y");
    let dy_host: Vec<f32> = (0..BATCH * output.size())
        .map(|_| rng.uniform_in(-1.0, 1.0))
        .collect();
    let mut dy = cpu.alloc_from(&dy_host).expect("dy");
    let mut dx = cpu.alloc(BATCH * input.size()).expect("dx");
    let forward_flops = match spec {
        LayerSpec::Conv2d(conv) => {
            2.0 * output.size() as f64 * (conv.kernel.0 * conv.kernel.1 * input.dims()[2]) as f64
        }
        LayerSpec::Dense(d) => 2.0 * (input.size() * d.units) as f64,
        _ => 0.0,
    } * BATCH as f64;

    let mut group = c.benchmark_group(name);
    if forward_flops > 0.0 {
        group.throughput(Throughput::Elements(forward_flops as u64));
    }
    group.bench_function("forward", |b| {
        b.iter(|| {
            layer
                .forward(&cpu, &x, &mut y, BATCH, Mode::Train)
                .expect("forward")
        });
    });
    if forward_flops > 0.0 {
        // Weight gradient plus (unless first layer) input gradient: 1x or 2x forward.
        let factor = if needs_dx { 2.0 } else { 1.0 };
        group.throughput(Throughput::Elements((forward_flops * factor) as u64));
    }
    group.bench_function("backward", |b| {
        b.iter(|| {
            layer
                .backward(
                    &cpu,
                    &x,
                    &y,
                    &mut dy,
                    needs_dx.then_some(&mut dx),
                    BATCH,
                    GradAt::PreActivation,
                )
                .expect("backward")
        });
    });
    group.finish();
}

fn conv(filters: usize) -> LayerSpec {
    LayerSpec::Conv2d(Conv2dSpec {
        filters,
        kernel: (3, 3),
        stride: (1, 1),
        padding: Padding::Valid,
        activation: Activation::Relu,
    })
}

fn pool() -> LayerSpec {
    LayerSpec::MaxPool2d(Pool2dSpec {
        size: (2, 2),
        stride: (2, 2),
        padding: Padding::Valid,
    })
}

fn layers(c: &mut Criterion) {
    bench_layer::<Conv2d<Cpu>>(c, "conv1", conv(32), &[32, 32, 3], false);
    bench_layer::<Pool2d<Cpu>>(c, "pool1", pool(), &[30, 30, 32], true);
    bench_layer::<Conv2d<Cpu>>(c, "conv2", conv(64), &[15, 15, 32], true);
    bench_layer::<Pool2d<Cpu>>(c, "pool2", pool(), &[13, 13, 64], true);
    bench_layer::<Conv2d<Cpu>>(c, "conv3", conv(128), &[6, 6, 64], true);
    bench_layer::<Pool2d<Cpu>>(c, "pool3", pool(), &[4, 4, 128], true);
    let dense = |units, activation| LayerSpec::Dense(DenseSpec { units, activation });
    bench_layer::<Dense<Cpu>>(c, "fc1", dense(128, Activation::Relu), &[512], true);
    bench_layer::<Dense<Cpu>>(c, "out", dense(10, Activation::Softmax), &[128], true);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = layers
}
criterion_main!(benches);
