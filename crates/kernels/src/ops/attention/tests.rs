//! Fused attention on every backend present, against the plain computation (the
//! whole attention matrix, then a softmax, in `f64`) and, for the backward pass,
//! central differences of that computation.

use super::*;
use crate::Cpu;

/// The plain attention: `o` and, given `w`, `sum(w * o)`.
fn plain(p: &AttentionParams, qkv: &[f32], w: &[f32]) -> (Vec<f64>, f64) {
    let (b_n, t_n, h_n, d) = (us(p.batch), us(p.time), us(p.heads), us(p.head_dim));
    let width = h_n * d;
    let at = |b: usize, t: usize, part: usize, h: usize, i: usize| {
        f64::from(qkv[(b * t_n + t) * 3 * width + part * width + h * d + i])
    };
    let mut o = vec![0.0; b_n * t_n * width];
    for b in 0..b_n {
        for h in 0..h_n {
            for t in 0..t_n {
                let keys = if p.causal != 0 { t + 1 } else { t_n };
                let s: Vec<f64> = (0..keys)
                    .map(|k| (0..d).map(|i| at(b, t, 0, h, i) * at(b, k, 1, h, i)).sum::<f64>() / (d as f64).sqrt())
                    .collect();
                let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
                for (k, v) in s.iter().enumerate() {
                    let pr = (v - m).exp() / z;
                    for i in 0..d {
                        o[(b * t_n + t) * width + h * d + i] += pr * at(b, k, 2, h, i);
                    }
                }
            }
        }
    }
    let total = o.iter().zip(w).map(|(a, b)| a * f64::from(*b)).sum();
    (o, total)
}

fn us(v: u32) -> usize {
    v as usize
}

fn data(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.61 + seed).sin() * 1.3).collect()
}

fn check<B: AttentionKernel>(backend: &B, p: &AttentionParams, gradients: bool) {
    let qkv = data(p.qkv_len(), 0.3);
    let w = data(p.out_len(), 2.0);
    let bq = backend.alloc_from(&qkv).unwrap();
    let (mut o, mut lse) = (backend.alloc(p.out_len()).unwrap(), backend.alloc(p.stats_len()).unwrap());
    backend.attention_fwd(p, &bq, &mut o, &mut lse).unwrap();
    let got = backend.to_host(&o, p.out_len()).unwrap();
    let (want, _) = plain(p, &qkv, &w);
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!((f64::from(*a) - b).abs() < 1e-5, "{p:?}: o[{i}] {a} vs {b}");
    }
    if !gradients {
        return;
    }
    let g = backend.alloc_from(&w).unwrap();
    let mut delta = backend.alloc(p.stats_len()).unwrap();
    let mut dqkv = backend.alloc_from(&vec![7.0; p.qkv_len()]).unwrap();
    backend.attention_bwd(p, &bq, &o, &lse, &g, &mut delta, &mut dqkv).unwrap();
    let dqkv = backend.to_host(&dqkv, p.qkv_len()).unwrap();
    let h = 1e-2f32;
    for i in 0..p.qkv_len() {
        let f = |e: f32| {
            let mut x = qkv.clone();
            x[i] += e;
            plain(p, &x, &w).1
        };
        let numeric = (f(h) - f(-h)) / f64::from(2.0 * h);
        assert!((f64::from(dqkv[i]) - numeric).abs() < 2e-3, "{p:?}: dqkv[{i}] {} vs {numeric}", dqkv[i]);
    }
}

/// Sizes that cross the block edges (70 steps: three blocks of 32, the last of 6).
fn cases() -> Vec<(AttentionParams, bool)> {
    let mut cases = Vec::new();
    for causal in [false, true] {
        cases.push((AttentionParams::new(2, 5, 2, 3, causal).unwrap(), true));
        cases.push((AttentionParams::new(1, 37, 1, 2, causal).unwrap(), true));
        cases.push((AttentionParams::new(2, 70, 2, 4, causal).unwrap(), false));
    }
    cases
}

#[test]
fn fused_attention_matches_the_plain_one_on_cpu() {
    for threads in [1, 2] {
        let cpu = Cpu::with_threads(threads).unwrap();
        for (p, gradients) in cases() {
            check(&cpu, &p, gradients);
        }
    }
}

#[cfg(feature = "cuda")]
#[test]
fn fused_attention_matches_the_plain_one_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        for (p, gradients) in cases() {
            check(&gpu, &p, gradients);
        }
    }
}
