//! Matrix product on backend buffers: the dense layer's forward and backward.

mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use crate::Result;
use crate::storage::Storage;

/// `c = op(a) * op(b)` (or `c += ...`), row-major, where `op` optionally transposes.
///
/// `op(a)` is `m x k`: `a` is stored `m x k`, or `k x m` when `trans_a`. `op(b)` is
/// `k x n`: `b` is stored `k x n`, or `n x k` when `trans_b`. `c` is `m x n`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulParams {
    /// Rows of `c`.
    pub m: u32,
    /// Columns of `c`.
    pub n: u32,
    /// The inner dimension.
    pub k: u32,
    /// `a` is stored transposed.
    pub trans_a: bool,
    /// `b` is stored transposed.
    pub trans_b: bool,
    /// Add to `c` instead of overwriting it (gradient accumulation).
    pub accumulate: bool,
}

/// The matrix product op.
pub trait MatmulKernel: Storage {
    /// Computes the product described by `p`; see [`MatmulParams`].
    fn matmul(
        &self,
        p: &MatmulParams,
        a: &Self::Buffer,
        b: &Self::Buffer,
        c: &mut Self::Buffer,
    ) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;
    use crate::rng::Rng;

    fn naive(p: &MatmulParams, a: &[f32], b: &[f32], c: &mut [f32]) {
        let (m, n, k) = (p.m as usize, p.n as usize, p.k as usize);
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f64;
                for q in 0..k {
                    let av = if p.trans_a {
                        a[q * m + i]
                    } else {
                        a[i * k + q]
                    };
                    let bv = if p.trans_b {
                        b[j * k + q]
                    } else {
                        b[q * n + j]
                    };
                    acc += f64::from(av) * f64::from(bv);
                }
                let acc = acc as f32;
                c[i * n + j] = if p.accumulate {
                    c[i * n + j] + acc
                } else {
                    acc
                };
            }
        }
    }

    fn check<B: MatmulKernel>(backend: &B) {
        let mut rng = Rng::new(1);
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 9),
            (64, 10, 128),
            (130, 70, 300),
        ] {
            for trans_a in [false, true] {
                for trans_b in [false, true] {
                    for accumulate in [false, true] {
                        let p = MatmulParams {
                            m,
                            n,
                            k,
                            trans_a,
                            trans_b,
                            accumulate,
                        };
                        let (m, n, k) = (m as usize, n as usize, k as usize);
                        let a: Vec<f32> = (0..m * k).map(|_| rng.uniform_in(-1.0, 1.0)).collect();
                        let b: Vec<f32> = (0..k * n).map(|_| rng.uniform_in(-1.0, 1.0)).collect();
                        let c0: Vec<f32> = (0..m * n).map(|_| rng.uniform_in(-1.0, 1.0)).collect();
                        let mut want = c0.clone();
                        naive(&p, &a, &b, &mut want);
                        let ab = backend.alloc_from(&a).unwrap();
                        let bb = backend.alloc_from(&b).unwrap();
                        let mut cb = backend.alloc_from(&c0).unwrap();
                        backend.matmul(&p, &ab, &bb, &mut cb).unwrap();
                        let got = backend.to_host(&cb, m * n).unwrap();
                        for (g, w) in got.iter().zip(&want) {
                            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{p:?}: {g} vs {w}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn matches_a_naive_product_on_cpu() {
        check(&Cpu::with_threads(2).unwrap());
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn matches_a_naive_product_on_cuda() {
        if let Some(gpu) = crate::cuda::test_device() {
            check(&gpu);
        }
    }

    /// The GPU against the CPU on shapes around and across the tiles, in every layout
    /// and every tile.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_matches_cpu() {
        use crate::cuda::parity::{assert_close, random};
        let Some(gpu) = crate::cuda::test_device() else {
            return;
        };
        let cpu = Cpu::with_threads(2).unwrap();
        for (m, n, k) in [
            (1, 1, 1),
            (64, 64, 16),
            (65, 63, 17),
            (129, 130, 9),
            (200, 10, 1000),
            (3, 300, 70),
        ] {
            for (trans_a, trans_b, accumulate) in [
                (false, false, false),
                (true, false, true),
                (false, true, false),
                (true, true, true),
            ] {
                let p = MatmulParams {
                    m,
                    n,
                    k,
                    trans_a,
                    trans_b,
                    accumulate,
                };
                let (m, n, k) = (m as usize, n as usize, k as usize);
                let (a, b, c0) = (
                    random(m * k, 1, 1.0),
                    random(k * n, 2, 1.0),
                    random(m * n, 3, 1.0),
                );
                let run = |on_gpu: bool| {
                    if on_gpu {
                        let mut c = gpu.alloc_from(&c0).unwrap();
                        let (ab, bb) = (gpu.alloc_from(&a).unwrap(), gpu.alloc_from(&b).unwrap());
                        gpu.matmul(&p, &ab, &bb, &mut c).unwrap();
                        gpu.to_host(&c, m * n).unwrap()
                    } else {
                        let mut c = cpu.alloc_from(&c0).unwrap();
                        let (ab, bb) = (cpu.alloc_from(&a).unwrap(), cpu.alloc_from(&b).unwrap());
                        cpu.matmul(&p, &ab, &bb, &mut c).unwrap();
                        cpu.to_host(&c, m * n).unwrap()
                    }
                };
                let want = run(false);
                crate::cuda::gemm::in_every_tile(|tile| {
                    assert_close(&format!("{p:?} {tile:?}"), &want, &run(true), 1e-4, 1e-4);
                });
            }
        }
    }

    #[test]
    fn short_buffers_are_an_error() {
        let cpu = Cpu::with_threads(1).unwrap();
        let a = cpu.alloc(5).unwrap();
        let b = cpu.alloc(6).unwrap();
        let mut c = cpu.alloc(6).unwrap();
        let p = MatmulParams {
            m: 2,
            n: 3,
            k: 3,
            trans_a: false,
            trans_b: false,
            accumulate: false,
        };
        let err = cpu.matmul(&p, &a, &b, &mut c).unwrap_err();
        assert!(
            err.to_string()
                .contains("`a` holds 5 elements but the shapes need 6"),
            "{err}"
        );
    }
}
