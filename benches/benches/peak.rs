//! The machine's own ceilings: the FMA peak (independent fused multiply-add chains in
//! registers, eight lanes wide, on 1 and 2 threads). Throughput is in FLOPs (a
//! multiply-add counts two). Run with `cargo xtask bench`.

// A benchmark whose setup fails has nothing to measure: it stops with the error.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Iterations of the chain loop in one call.
const ROUNDS: usize = 1 << 18;
/// Independent accumulators: enough to cover the FMA latency on two pipes.
const CHAINS: usize = 12;
/// FLOPs of one call on one thread: chains x 8 lanes x 2 (multiply and add).
const FLOPS: u64 = (ROUNDS * CHAINS * 8 * 2) as u64;

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

fn fma_peak(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    {
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            eprintln!("skipped: the FMA peak needs AVX2 and FMA");
            return;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut group = c.benchmark_group("peak");
        for threads in [1, 2].into_iter().filter(|&t| t <= cores.max(1)) {
            group.throughput(Throughput::Elements(FLOPS * threads as u64));
            group.bench_function(format!("fma_threads{threads}"), |b| {
                b.iter(|| {
                    std::thread::scope(|s| {
                        let handles: Vec<_> = (0..threads)
                            .map(|t| {
                                // SAFETY: AVX2 and FMA were detected above.
                                s.spawn(move || unsafe { avx2::chains(black_box(t as f32 + 1.0)) })
                            })
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
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = c;
        eprintln!("skipped: the FMA peak is measured on x86-64 only");
    }
}

criterion_group!(benches, fma_peak);
criterion_main!(benches);
