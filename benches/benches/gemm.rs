//! kiln's packed SGEMM against the `gemm` crate on the seed CNN's products at batch 64,
//! both on two threads; and a large square product on one and two threads
//! (`gemm/square_1024_threads{t}`), whose GFLOP/s set against the FMA peak
//! (`peak`) say how close the micro-kernel comes to the machine's ceiling.
//!
//! Run with `cargo bench -p kiln-benches --bench gemm`. Throughput is reported as
//! "elements" per second, where one element is one FLOP (`2 * m * n * k` per product),
//! so criterion's `Gelem/s` reads as GFLOP/s.

// A benchmark has no caller to hand a setup error to: failing loudly is the point.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_kernels::ops::matmul::{MatmulKernel, MatmulParams};
use kiln_kernels::{Cpu, Storage};

/// One product: `c (m x n) = op(a) (m x k) * op(b) (k x n)`, row-major storage.
struct Shape {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    /// `a` is stored `k x m` (the weight gradient's `col^T`).
    trans_a: bool,
    /// `b` is stored `n x k` (the input gradient's `w^T`).
    trans_b: bool,
}

const fn shape(
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
) -> Shape {
    Shape {
        name,
        m,
        k,
        n,
        trans_a,
        trans_b,
    }
}

/// The seed CNN (3x3 convolutions 3 -> 32 -> 64 -> 128 on 32x32 inputs, then a dense
/// layer) at batch 64, as im2col products: forward `col * w`, weight gradient
/// `col^T * dy`, input gradient `dy * w^T`.
const SHAPES: [Shape; 9] = [
    shape("conv1_fwd", 57600, 27, 32, false, false),
    shape("conv1_wgrad", 27, 57600, 32, true, false),
    shape("conv2_fwd", 10816, 288, 64, false, false),
    shape("conv2_wgrad", 288, 10816, 64, true, false),
    shape("conv2_igrad", 10816, 64, 288, false, true),
    shape("conv3_fwd", 1024, 576, 128, false, false),
    shape("conv3_wgrad", 576, 1024, 128, true, false),
    shape("conv3_igrad", 1024, 128, 576, false, true),
    shape("dense1", 64, 512, 128, false, false),
];

const THREADS: usize = 2;

/// Deterministic values in `[-1, 1)`, so that no denormals skew the timings.
fn values(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let cpu = Cpu::with_threads(THREADS).expect("a CPU backend with two threads");
    for s in &SHAPES {
        let (m, n, k) = (s.m, s.n, s.k);
        let a = values(m * k, 1);
        let b = values(k * n, 2);
        let mut group = c.benchmark_group(format!("gemm/{}_{m}x{k}x{n}", s.name));
        // "Elements" are FLOPs: criterion's elements/s is FLOP/s.
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));

        let p = MatmulParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            trans_a: s.trans_a,
            trans_b: s.trans_b,
            accumulate: false,
        };
        let ab = cpu.alloc_from(&a).expect("upload a");
        let bb = cpu.alloc_from(&b).expect("upload b");
        let mut cb = cpu.alloc(m * n).expect("allocate c");
        group.bench_function("kiln", |bench| {
            bench.iter(|| {
                cpu.matmul(black_box(&p), &ab, &bb, &mut cb)
                    .expect("matmul")
            });
        });

        // The same product through the `gemm` crate: strides in elements, (column,
        // row) order.
        let (a_cs, a_rs) = if s.trans_a { (m, 1) } else { (1, k) };
        let (b_cs, b_rs) = if s.trans_b { (k, 1) } else { (1, n) };
        let mut dst = vec![0.0f32; m * n];
        group.bench_function("gemm_crate", |bench| {
            bench.iter(|| {
                // SAFETY: the strides describe `m x k`, `k x n` and `m x n` matrices that
                // lie inside `a`, `b` and `dst`, and `dst` does not alias them.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        dst.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        black_box(a.as_ptr()),
                        a_cs as isize,
                        a_rs as isize,
                        b.as_ptr(),
                        b_cs as isize,
                        b_rs as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::Rayon(THREADS),
                    );
                }
            });
        });
        group.finish();
    }
}

/// `c = a b` for square matrices of side 1024 on one and two threads: long enough in
/// every dimension that blocking, not edges, sets the pace.
fn square(c: &mut Criterion) {
    const SIDE: usize = 1024;
    let a = values(SIDE * SIDE, 3);
    let b = values(SIDE * SIDE, 4);
    for threads in [1, 2] {
        let cpu = Cpu::with_threads(threads).expect("a CPU backend");
        let mut group = c.benchmark_group(format!("gemm/square_{SIDE}_threads{threads}"));
        group.throughput(Throughput::Elements((2 * SIDE * SIDE * SIDE) as u64));
        let p = MatmulParams {
            m: SIDE as u32,
            n: SIDE as u32,
            k: SIDE as u32,
            trans_a: false,
            trans_b: false,
            accumulate: false,
        };
        let ab = cpu.alloc_from(&a).expect("upload a");
        let bb = cpu.alloc_from(&b).expect("upload b");
        let mut cb = cpu.alloc(SIDE * SIDE).expect("allocate c");
        group.bench_function("kiln", |bench| {
            bench.iter(|| {
                cpu.matmul(black_box(&p), &ab, &bb, &mut cb)
                    .expect("matmul")
            });
        });
        group.finish();
    }
}

criterion_group!(benches, bench, square);
criterion_main!(benches);
