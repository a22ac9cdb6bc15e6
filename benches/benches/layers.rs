//! The layers of the benchmark models at batch 64: the seed CNN's convolutions forward
//! and backward (with GFLOP/s), its pools and its dense layers; the small ResNet's
//! convolutions (groups `small_resnet_{layer}`; `res1` stands for both of that block's
//! convolutions, which have the same shapes); batch normalisation with ReLU at the
//! ResNet-9's first and last shapes (groups `batch_norm_{h}x{w}x{c}`). Run with
//! `cargo xtask bench`.
//!
//! Backward runs from the pre-activation gradient (the activation's own pass is
//! measured with the whole model in `models`).
//!
//! Criterion's "elements" throughput is used for FLOPs, so its `Gelem/s` reads as
//! GFLOP/s.

// A benchmark whose setup fails has nothing to measure: it stops with the error.
#![allow(clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln::nn::{Backward, BatchNorm, Conv2d, Dense, Layer, Mode, Pool2d};
use kiln::shape::{
    Activation, BatchNormSpec, Conv2dSpec, DenseSpec, Padding, Pool2dSpec, PoolMode, Shape, Spec,
};
use kiln::{Cpu, Storage};
use kiln_kernels::GradAt;
use kiln_kernels::ops::InputGrad;
use kiln_kernels::rng::Rng;

const BATCH: usize = 64;

fn threads() -> usize {
    std::env::var("KILN_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// Benchmarks layer `L` built from `spec` on `input`; `flops` is one sample's
/// forward multiply-adds times two (zero for layers without products).
fn bench_layer<L: Layer<Cpu>>(
    c: &mut Criterion,
    name: &str,
    spec: L::Spec,
    input: &[usize],
    needs_dx: bool,
    flops: f64,
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
    let forward_flops = flops * BATCH as f64;

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
            let pass = Backward {
                x: Some(&x),
                y: Some(&y),
                dy: &mut dy,
                dx: needs_dx.then(|| InputGrad::write(&mut dx)),
                batch: BATCH,
                at: GradAt::PreActivation,
                through_relu_below: false,
            };
            layer.backward(&cpu, pass).expect("backward")
        });
    });
    group.finish();
}

/// A ReLU convolution with `filters` outputs, a square `kernel`, `stride` and
/// `padding`.
fn conv(filters: usize, kernel: usize, stride: usize, padding: Padding) -> Conv2dSpec {
    Conv2dSpec {
        filters,
        kernel: (kernel, kernel),
        stride: (stride, stride),
        padding,
        activation: Activation::Relu,
    }
}

/// One sample's forward FLOPs of convolution `spec` on `input`.
fn conv_flops(spec: &Conv2dSpec, input: &[usize]) -> f64 {
    let output = spec.output_shape(&Shape::new(input)).expect("shape");
    let taps = spec.kernel.0 * spec.kernel.1 * input[2];
    2.0 * output.size() as f64 * taps as f64
}

fn pool() -> Pool2dSpec {
    Pool2dSpec {
        mode: PoolMode::Max,
        size: (2, 2),
        stride: (2, 2),
        padding: Padding::Valid,
    }
}

fn layers(c: &mut Criterion) {
    let mut bench_conv = |name: &str, spec: Conv2dSpec, input: [usize; 3], needs_dx| {
        let flops = conv_flops(&spec, &input);
        bench_layer::<Conv2d<Cpu>>(c, name, spec, &input, needs_dx, flops);
    };
    let (valid, same) = (Padding::Valid, Padding::Same);
    for (name, spec, input, needs_dx) in [
        ("conv1", conv(32, 3, 1, valid), [32, 32, 3], false),
        ("conv2", conv(64, 3, 1, valid), [15, 15, 32], true),
        ("conv3", conv(128, 3, 1, valid), [6, 6, 64], true),
    ] {
        bench_conv(name, spec, input, needs_dx);
    }
    for (layer, spec, input, needs_dx) in [
        ("stem", conv(32, 3, 1, same), [32, 32, 3], false),
        ("res1", conv(32, 3, 1, same), [32, 32, 32], true),
        ("res2_a", conv(64, 3, 2, same), [32, 32, 32], true),
        ("res2_b", conv(64, 3, 1, same), [16, 16, 64], true),
        ("res2_shortcut", conv(64, 1, 2, valid), [32, 32, 32], true),
    ] {
        bench_conv(&format!("small_resnet_{layer}"), spec, input, needs_dx);
    }
    bench_layer::<Pool2d<Cpu>>(c, "pool1", pool(), &[30, 30, 32], true, 0.0);
    bench_layer::<Pool2d<Cpu>>(c, "pool2", pool(), &[13, 13, 64], true, 0.0);
    bench_layer::<Pool2d<Cpu>>(c, "pool3", pool(), &[4, 4, 128], true, 0.0);
    let dense = |units, activation| DenseSpec { units, activation };
    let flops = |inputs: usize, units: usize| 2.0 * (inputs * units) as f64;
    let fc1 = dense(128, Activation::Relu);
    bench_layer::<Dense<Cpu>>(c, "fc1", fc1, &[512], true, flops(512, 128));
    let out = dense(10, Activation::Softmax);
    bench_layer::<Dense<Cpu>>(c, "out", out, &[128], true, flops(128, 10));
    let batch_norm = BatchNormSpec {
        activation: Activation::Relu,
        ..BatchNormSpec::KERAS
    };
    for input in [[32, 32, 32], [4, 4, 128]] {
        let name = format!("batch_norm_{}x{}x{}", input[0], input[1], input[2]);
        bench_layer::<BatchNorm<Cpu>>(c, &name, batch_norm, &input, true, 0.0);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = layers
}
criterion_main!(benches);
