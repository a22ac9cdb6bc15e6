//! The machine's own ceilings: the FMA peak (independent fused multiply-add chains in
//! registers, on 1 and 2 threads): eight lanes wide (AVX2, what kiln's kernels use;
//! `peak/fma_threads{t}`) and, where the CPU has AVX-512, sixteen
//! (`peak/fma512_threads{t}`, the ceiling of libraries that use it: twice the first
//! where the FMA units are 512 bits wide, as on AMD's Zen 5). Throughput is in FLOPs
//! (a multiply-add counts two). Run with `cargo xtask bench`.

// A benchmark whose setup fails has nothing to measure: it stops with the error.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Iterations of the chain loop in one call.
const ROUNDS: usize = 1 << 18;
/// Independent accumulators: enough to cover the FMA latency on two pipes.
const CHAINS: usize = 12;
/// FLOPs of one call on one thread, per lane: chains x 2 (multiply and add).
const FLOPS_PER_LANE: u64 = (ROUNDS * CHAINS * 2) as u64;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };

    use super::{CHAINS, ROUNDS};

    /// Runs `CHAINS` independent FMA chains for `ROUNDS` rounds; returns their sum so
    /// the work is not optimised away.
    #[target_feature(enable = "avx2,fma")]
    pub fn chains(seed: f32) -> f32 {
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(seed * 1e-6);
        let mut acc: [__m256; CHAINS] = [_mm256_setzero_ps(); CHAINS];
        for _ in 0..ROUNDS {
            for v in &mut acc {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut total = _mm256_setzero_ps();
        for v in acc {
            total = _mm256_add_ps(total, v);
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds exactly the eight floats the unaligned store writes.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
        lanes.iter().sum()
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_reduce_add_ps, _mm512_set1_ps,
        _mm512_setzero_ps,
    };

    use super::{CHAINS, ROUNDS};

    /// [`super::avx2::chains`], sixteen lanes wide.
    #[target_feature(enable = "avx512f")]
    pub fn chains(seed: f32) -> f32 {
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(seed * 1e-6);
        let mut acc: [__m512; CHAINS] = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..ROUNDS {
            for v in &mut acc {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        let total = acc
            .into_iter()
            .fold(_mm512_setzero_ps(), |t, v| _mm512_add_ps(t, v));
        _mm512_reduce_add_ps(total)
    }
}

/// `chains`, `lanes` wide, on 1 and 2 threads (as many as there are cores), as
/// `peak/{name}_threads{t}`.
fn bench_chains(c: &mut Criterion, name: &str, lanes: u64, chains: fn(f32) -> f32) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut group = c.benchmark_group("peak");
    for threads in [1, 2].into_iter().filter(|&t| t <= cores.max(1)) {
        group.throughput(Throughput::Elements(
            FLOPS_PER_LANE * lanes * threads as u64,
        ));
        group.bench_function(format!("{name}_threads{threads}"), |b| {
            b.iter(|| {
                std::thread::scope(|s| {
                    let handles: Vec<_> = (0..threads)
                        .map(|t| s.spawn(move || chains(black_box(t as f32 + 1.0))))
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("chain thread"))
                        .sum::<f32>()
                })
            });
        });
    }
    group.finish();
}

fn fma_peak(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected;
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("skipped: the FMA peak needs AVX2 and FMA");
            return;
        }
        // SAFETY: AVX2 and FMA were detected above.
        bench_chains(c, "fma", 8, |seed| unsafe { avx2::chains(seed) });
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected just above.
            bench_chains(c, "fma512", 16, |seed| unsafe { avx512::chains(seed) });
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = c;
        eprintln!("skipped: the FMA peak is measured on x86-64 only");
    }
}

criterion_group!(benches, fma_peak);
criterion_main!(benches);
