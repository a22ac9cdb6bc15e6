//! `sgemm` against the triple loop ([`reference`]), over shapes that hit every edge of
//! the blocking, every operand layout, one and two threads, and every micro-kernel the
//! CPU runs (AVX-512, AVX2, portable); `sgemm_with` against the triple loop followed
//! by a scalar epilogue.

use super::block::{Isa, KC, MC, MR, MR_AVX512, NC, NR};
use super::plan::{Split, plan};
use super::*;
use crate::Cpu;
use crate::rng::Rng;

/// `full`, or under Miri (which interprets every load and store, thousands of times
/// slower than native code) `miri`: fewer shapes that still cross the same block
/// edges.
fn sizes<T: ?Sized>(full: &'static T, miri: &'static T) -> &'static T {
    if cfg!(miri) { miri } else { full }
}

fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.uniform_in(-1.0, 1.0)).collect()
}

/// How `a` or `b` is laid out in memory.
#[derive(Clone, Copy, Debug)]
enum Layout {
    RowMajor,
    /// Stored as the transpose, viewed through `.t()`.
    Transposed,
    /// Row-major with padding after each row, starting one element into the slice.
    Padded,
    /// Neither stride is 1: every other element of a wider row-major matrix.
    Strided,
}

/// A `rows x cols` matrix of random values stored in `layout`: the storage (NaN
/// wherever the view does not look) and the view's `(row_stride, col_stride, offset)`.
fn matrix(rng: &mut Rng, rows: usize, cols: usize, layout: Layout) -> (Vec<f32>, [usize; 3]) {
    let vals = random(rng, rows * cols);
    let place = |rs: usize, cs: usize, off: usize| {
        let len = if rows * cols == 0 {
            off
        } else {
            off + (rows - 1) * rs + (cols - 1) * cs + 1
        };
        let mut d = vec![f32::NAN; len];
        for i in 0..rows {
            for j in 0..cols {
                d[off + i * rs + j * cs] = vals[i * cols + j];
            }
        }
        (d, [rs, cs, off])
    };
    match layout {
        Layout::RowMajor => place(cols, 1, 0),
        Layout::Transposed => place(1, rows, 0),
        Layout::Padded => place(cols + 3, 1, 1),
        Layout::Strided => place(2 * cols + 1, 2, 1),
    }
}

fn view(d: &[f32], rows: usize, cols: usize, [rs, cs, off]: [usize; 3]) -> MatRef<'_> {
    MatRef {
        data: &d[off..],
        rows,
        cols,
        row_stride: rs,
        col_stride: cs,
    }
}

/// Runs `f` on one and two threads with the detected micro-kernel, and on two threads
/// with each narrower one the CPU runs (see [`Cpu::every_path`]).
fn on_every_backend(f: impl Fn(&CpuInner)) {
    for cpu in Cpu::every_path() {
        f(cpu.inner());
    }
}

/// Every micro-kernel this CPU runs.
fn every_isa() -> Vec<Isa> {
    Cpu::every_path()
        .iter()
        .map(|cpu| cpu.inner().gemm.isa())
        .collect()
}

/// The activation written out from its definition, the epilogue's oracle.
fn activate(kind: ActivationKind, slope: f32, x: f32) -> f32 {
    match kind {
        ActivationKind::Linear => x,
        ActivationKind::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        ActivationKind::LeakyRelu => {
            if x < 0.0 {
                slope * x
            } else {
                x
            }
        }
        ActivationKind::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        ActivationKind::Tanh => x.tanh(),
        ActivationKind::Gelu | ActivationKind::Softmax => unreachable!("not fused"),
    }
}

/// One product of the given shape and layouts against `reference`; `c` has rows
/// `c_rs >= n` apart, and the padding between rows must survive untouched.
fn check(
    cpu: &CpuInner,
    shape: (usize, usize, usize),
    la: Layout,
    lb: Layout,
    alpha: f32,
    beta: f32,
    c_rs: usize,
) {
    check_with(cpu, shape, la, lb, alpha, beta, c_rs, None);
}

/// As [`check`], through `sgemm_with`: `epilogue` is the activation and its slope, with
/// or without a random bias, checked against `reference` followed by [`activate`].
#[allow(clippy::too_many_arguments)]
fn check_with(
    cpu: &CpuInner,
    (m, n, k): (usize, usize, usize),
    la: Layout,
    lb: Layout,
    alpha: f32,
    beta: f32,
    c_rs: usize,
    epilogue: Option<(ActivationKind, f32, bool)>,
) {
    let mut rng = Rng::new((m * 31 + n * 17 + k) as u64);
    let (ad, a_at) = matrix(&mut rng, m, k, la);
    let (bd, b_at) = matrix(&mut rng, k, n, lb);
    let (a, b) = (view(&ad, m, k, a_at), view(&bd, k, n, b_at));
    // With `beta == 0`, `c` starts as NaN: none of it may reach the result.
    let c0 = if beta == 0.0 {
        vec![f32::NAN; m * c_rs]
    } else {
        random(&mut rng, m * c_rs)
    };
    let mut want = c0.clone();
    let mut got = c0.clone();
    let out = |data| MatMut {
        data,
        rows: m,
        cols: n,
        row_stride: c_rs,
    };
    reference(alpha, a, b, beta, out(&mut want));
    let bias = random(&mut rng, n);
    match epilogue {
        None => sgemm(cpu, alpha, a, b, beta, out(&mut got)),
        Some((activation, negative_slope, with_bias)) => {
            let epilogue = Epilogue {
                bias: with_bias.then_some(&bias[..]),
                activation,
                negative_slope,
            };
            sgemm_with(cpu, alpha, a, b, beta, out(&mut got), &epilogue);
            for row in want.chunks_mut(c_rs) {
                for (j, v) in row[..n].iter_mut().enumerate() {
                    let x = if with_bias { *v + bias[j] } else { *v };
                    *v = activate(activation, negative_slope, x);
                }
            }
        }
    }
    let tol = 2e-5 * (k as f32).sqrt().max(1.0);
    let what = || {
        format!(
            "{m}x{n}x{k} {la:?}/{lb:?} alpha {alpha} beta {beta} epilogue {epilogue:?}, \
             {:?} on {} threads",
            cpu.gemm.isa,
            cpu.pool.threads()
        )
    };
    for i in 0..m {
        for j in 0..c_rs {
            let (g, w) = (got[i * c_rs + j], want[i * c_rs + j]);
            if j < n {
                assert!(
                    (g - w).abs() <= tol * (1.0 + w.abs()),
                    "{}: c[{i}][{j}] = {g}, want {w}",
                    what()
                );
            } else {
                assert!(
                    g.to_bits() == c0[i * c_rs + j].to_bits(),
                    "{}: padding of row {i} written",
                    what()
                );
            }
        }
    }
}

fn row_major(cpu: &CpuInner, shape: (usize, usize, usize)) {
    check(
        cpu,
        shape,
        Layout::RowMajor,
        Layout::RowMajor,
        1.0,
        0.0,
        shape.1,
    );
}

#[test]
fn small_and_ragged_shapes() {
    let dims = sizes(
        &[
            1,
            2,
            5,
            MR - 1,
            MR,
            MR + 1,
            MR_AVX512 - 1,
            MR_AVX512,
            13,
            NR - 1,
            NR,
            NR + 1,
            2 * NR - 1,
            2 * NR,
            2 * NR + 1,
            3 * NR,
            6 * MR + 1,
            47,
        ][..],
        &[1, MR + 1, NR + 1, 2 * NR + 1][..],
    );
    on_every_backend(|cpu| {
        for &m in dims {
            for &n in dims {
                for &k in sizes(&[1, 3, 16, 31][..], &[1, 31][..]) {
                    row_major(cpu, (m, n, k));
                }
            }
        }
    });
}

#[test]
fn every_layout() {
    use Layout::*;
    let layouts = [RowMajor, Transposed, Padded, Strided];
    on_every_backend(|cpu| {
        for &shape in sizes(
            &[(7, 19, 23), (61, 37, 129), (97, 50, 300)][..],
            &[(7, 19, 23)][..],
        ) {
            for la in layouts {
                for lb in layouts {
                    check(cpu, shape, la, lb, 1.0, 0.0, shape.1);
                }
            }
        }
    });
}

#[test]
fn blocking_edges() {
    // Around every block size of each micro-kernel, in each dimension; large enough to
    // be split across threads.
    on_every_backend(|cpu| {
        let isa = cpu.gemm.isa;
        let (mr, mc, kc) = (isa.mr(), MC, KC);
        let shapes = if cfg!(miri) {
            // One shape past each of the three block sizes.
            vec![
                (mc + 1, 3, 5),
                (mr + 1, NR + 1, kc + 1),
                (mr + 1, NC + NR + 3, 2),
            ]
        } else {
            vec![
                (mc - 1, 33, kc + 1),
                (mc + 1, NR * 3, 2 * kc + 7),
                (2 * mc + mr + 1, 2 * NR + 1, 40),
                (mr * 40 + 1, NC + NR + 3, 17),
                (mr * 20 + 3, 4 * NR, kc - 1),
                (11, 13, 5000),
                (27, 32, 3001),
                (3, 1030, 64),
                (40, 700, 64),
                // `b` too big to be packed whole: each task packs it panel by panel.
                (300, 600, 500),
            ]
        };
        for shape in shapes {
            row_major(cpu, shape);
            check(
                cpu,
                shape,
                Layout::Transposed,
                Layout::Transposed,
                1.0,
                1.0,
                shape.1 + 2,
            );
        }
    });
}

#[test]
#[cfg_attr(
    miri,
    ignore = "the same layouts as every_layout, at sizes too slow to interpret"
)]
fn the_seed_cnn_products_at_a_small_batch() {
    // The layouts of the convolutions' products (forward, weight and input gradient)
    // and the dense layer, at sizes a debug build checks quickly.
    use Layout::*;
    on_every_backend(|cpu| {
        check(cpu, (900, 32, 27), RowMajor, RowMajor, 1.0, 0.0, 32);
        check(cpu, (27, 32, 900), Transposed, RowMajor, 1.0, 1.0, 32);
        check(cpu, (169, 64, 288), RowMajor, RowMajor, 1.0, 0.0, 64);
        check(cpu, (288, 64, 676), Transposed, RowMajor, 1.0, 1.0, 64);
        check(cpu, (169, 288, 64), RowMajor, Transposed, 1.0, 0.0, 288);
        check(cpu, (64, 128, 512), RowMajor, RowMajor, 1.0, 0.0, 128);
    });
}

#[test]
fn a_long_k_is_split_and_accumulated() {
    // The weight gradient's shape: small `m x n`, long `k`, `c += a^T b`. Under Miri,
    // a `k` just long enough to be split between the two threads.
    let (m, n, k) = if cfg!(miri) {
        (6, 16, 2 * KC + 3)
    } else {
        (27, 32, 20_000)
    };
    on_every_backend(|cpu| {
        check(
            cpu,
            (m, n, k),
            Layout::Transposed,
            Layout::RowMajor,
            1.0,
            1.0,
            32,
        );
        check(
            cpu,
            (m, n, k),
            Layout::Transposed,
            Layout::RowMajor,
            0.5,
            0.0,
            32,
        );
        if cfg!(miri) {
            return;
        }
        check(
            cpu,
            (64, 130, 9_000),
            Layout::RowMajor,
            Layout::Transposed,
            -2.0,
            0.25,
            131,
        );
    });
}

#[test]
fn alpha_and_beta() {
    on_every_backend(|cpu| {
        for &(alpha, beta) in &[(1.0, 1.0), (-0.5, 0.0), (2.0, -3.0), (1.0, 0.5)] {
            for &shape in sizes(
                &[(1, 1, 1), (13, 17, 19), (150, 70, 90)][..],
                &[(13, 17, 19)][..],
            ) {
                check(
                    cpu,
                    shape,
                    Layout::RowMajor,
                    Layout::RowMajor,
                    alpha,
                    beta,
                    shape.1 + 1,
                );
            }
        }
    });
}

/// `sgemm_prepacked` against the reference: `a` in every layout (read in place),
/// `b` packed with [`packed_index`], `c` overwritten or added to.
#[test]
fn prepacked_products_overwrite_or_accumulate() {
    let mut rng = Rng::new(41);
    for isa in every_isa() {
        for &(m, n, k) in sizes(
            &[
                (1, 1, 1),
                (6, 16, 5),
                (13, 17, 19),
                (64, 32, 84),
                (25, 64, 33),
                (12, 48, 7),
                (7, 40, 0),
            ][..],
            &[(1, 1, 1), (13, 17, 19), (12, 48, 7), (7, 40, 0)][..],
        ) {
            for layout in [Layout::RowMajor, Layout::Transposed, Layout::Strided] {
                for beta in [0.0, 1.0] {
                    let (ad, a_at) = matrix(&mut rng, m, k, layout);
                    let b = random(&mut rng, k * n);
                    let mut packed = vec![f32::NAN; packed_len(k, n)];
                    for p in 0..k {
                        for j in 0..n {
                            packed[packed_index(k, p, j)] = b[p * n + j];
                        }
                    }
                    // The strips' padding past column `n` is read, its results dropped.
                    for v in packed.iter_mut().filter(|v| v.is_nan()) {
                        *v = 0.0;
                    }
                    let c0 = random(&mut rng, m * n);
                    let mut want = c0.clone();
                    let a = view(&ad, m, k, a_at);
                    reference(
                        1.0,
                        a,
                        MatRef::row_major(&b, k, n),
                        beta,
                        MatMut::row_major(&mut want, m, n),
                    );
                    let mut got = c0.clone();
                    sgemm_prepacked(isa, a, &packed, n, beta, MatMut::row_major(&mut got, m, n));
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                            "{isa:?} {m}x{n}x{k} {layout:?} beta {beta}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn no_k_or_no_alpha_only_scales_c() {
    let cpu = Cpu::with_threads(2).unwrap();
    let no_k = (MatRef::row_major(&[], 2, 0), MatRef::row_major(&[], 0, 2));
    let mut c = vec![f32::NAN, 2.0, f32::NAN, 4.0];
    sgemm(
        cpu.inner(),
        1.0,
        no_k.0,
        no_k.1,
        0.0,
        MatMut::row_major(&mut c, 2, 2),
    );
    assert_eq!(c, [0.0; 4]);
    let mut c = vec![1.0, 2.0, 3.0, 4.0];
    sgemm(
        cpu.inner(),
        1.0,
        no_k.0,
        no_k.1,
        0.5,
        MatMut::row_major(&mut c, 2, 2),
    );
    assert_eq!(c, [0.5, 1.0, 1.5, 2.0]);
    // `alpha == 0` reads neither `a` nor `b`: NaN there stays out of `c`.
    let nan = [f32::NAN; 4];
    let mut c = vec![1.0, 2.0, 3.0, 4.0];
    let a = MatRef::row_major(&nan, 2, 2);
    sgemm(cpu.inner(), 0.0, a, a, 2.0, MatMut::row_major(&mut c, 2, 2));
    assert_eq!(c, [2.0, 4.0, 6.0, 8.0]);
}

#[test]
fn consecutive_products_do_not_reuse_a_stale_packed_b() {
    // Same shapes and ranges, different `b`: a worker must repack.
    let cpu = Cpu::with_threads(2).unwrap();
    let (m, n, k) = if cfg!(miri) {
        (60, 20, 30)
    } else {
        (600, 64, 100)
    };
    let mut rng = Rng::new(3);
    let a = random(&mut rng, m * k);
    for _ in 0..3 {
        let b = random(&mut rng, k * n);
        let (av, bv) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
        let mut want = vec![0.0; m * n];
        let mut got = vec![0.0; m * n];
        reference(1.0, av, bv, 0.0, MatMut::row_major(&mut want, m, n));
        sgemm(
            cpu.inner(),
            1.0,
            av,
            bv,
            0.0,
            MatMut::row_major(&mut got, m, n),
        );
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
        }
    }
}

#[test]
fn threads_sharing_a_backend_take_turns() {
    let cpu = Cpu::with_threads(2).unwrap();
    std::thread::scope(|s| {
        for seed in 0..3 {
            let cpu = cpu.clone();
            s.spawn(move || {
                let (m, n, k) = if cfg!(miri) {
                    (20, 17, 15)
                } else {
                    (200, 96, 150)
                };
                let mut rng = Rng::new(seed);
                let a = random(&mut rng, m * k);
                let b = random(&mut rng, k * n);
                let (av, bv) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
                let mut want = vec![0.0; m * n];
                reference(1.0, av, bv, 0.0, MatMut::row_major(&mut want, m, n));
                for _ in 0..5 {
                    let mut got = vec![0.0; m * n];
                    sgemm(
                        cpu.inner(),
                        1.0,
                        av,
                        bv,
                        0.0,
                        MatMut::row_major(&mut got, m, n),
                    );
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
                    }
                }
            });
        }
    });
}

/// Every fused activation, with and without a bias, `beta` 0 and 1, on shapes that
/// the two-thread planner splits by rows, by columns and by `k`, with ragged edges,
/// several `k` blocks, `a` and `b` packed or read in place.
#[test]
#[cfg_attr(
    miri,
    ignore = "its shapes must reach every split, too large to interpret"
)]
fn the_epilogue_matches_the_product_followed_by_the_activation() {
    use Layout::*;
    let shapes = [
        ((7, 19, 23), RowMajor, RowMajor),
        ((13, 5, 3), Padded, Strided),
        ((150, 70, 90), RowMajor, RowMajor),
        ((MC + 1, 3 * NR, 2 * KC + 7), Strided, Transposed),
        ((MR_AVX512 * 5 + 1, 4 * NR + 5, 300), RowMajor, RowMajor),
        ((40, 700, 64), RowMajor, RowMajor),
        ((30, 700, 64), RowMajor, RowMajor),
        ((3, 1030, 64), Transposed, RowMajor),
        ((27, 32, 3001), Transposed, RowMajor),
        ((11, 13, 5000), RowMajor, Transposed),
    ];
    // The shapes cover every way of cutting a product into tasks, for every kernel.
    for isa in every_isa() {
        let splits: Vec<Split> = shapes
            .iter()
            .map(|&((m, n, k), la, lb)| {
                let (ad, a_at) = matrix(&mut Rng::new(0), m, k, la);
                let (bd, b_at) = matrix(&mut Rng::new(0), k, n, lb);
                plan(
                    m,
                    n,
                    k,
                    2,
                    isa,
                    &Lhs::Mat(view(&ad, m, k, a_at)),
                    &view(&bd, k, n, b_at),
                )
                .split
            })
            .collect();
        assert!(
            splits.iter().any(|s| matches!(s, Split::Rows(_))),
            "{isa:?}"
        );
        assert!(
            splits.iter().any(|s| matches!(s, Split::Cols(_))),
            "{isa:?}"
        );
        assert!(
            splits.iter().any(|s| matches!(s, Split::Depth(_))),
            "{isa:?}"
        );
    }
    let activations = [
        (ActivationKind::Linear, 0.0),
        (ActivationKind::Relu, 0.0),
        (ActivationKind::LeakyRelu, 0.1),
        (ActivationKind::LeakyRelu, -1.5),
        (ActivationKind::Sigmoid, 0.0),
        (ActivationKind::Tanh, 0.0),
    ];
    on_every_backend(|cpu| {
        for &(shape, la, lb) in &shapes {
            for &(kind, slope) in &activations {
                for with_bias in [false, true] {
                    for beta in [0.0, 1.0] {
                        let epilogue = Some((kind, slope, with_bias));
                        check_with(cpu, shape, la, lb, 1.0, beta, shape.1 + 3, epilogue);
                    }
                }
            }
        }
        // Alpha and beta come before the bias and the activation.
        let epilogue = Some((ActivationKind::LeakyRelu, 0.2, true));
        for (shape, la, alpha, beta) in [
            ((150, 70, 90), RowMajor, -2.0, 0.5),
            ((27, 32, 3001), Transposed, 0.5, -1.0),
        ] {
            check_with(cpu, shape, la, RowMajor, alpha, beta, shape.1, epilogue);
        }
    });
}

#[test]
fn relu_in_the_epilogue_lets_nan_through() {
    // Row 1 of `a` holds a NaN, so row 1 of `c` is NaN before the activation: `Relu`
    // and `LeakyRelu` must keep it, as `if x < 0 { .. } else { x }` does.
    on_every_backend(|cpu| {
        // One thread, split by rows or columns, split along `k`.
        let shapes = sizes(
            &[(8, 20, 5), (200, 64, 64), (20, 40, 5000)][..],
            &[(8, 20, 5), (40, 20, 8), (8, 20, 2 * KC + 3)][..],
        );
        for &(m, n, k) in shapes {
            let mut a = vec![1.0; m * k];
            a[k] = f32::NAN;
            let b = vec![-1.0; k * n];
            let bias = vec![0.5; n];
            for activation in [ActivationKind::Relu, ActivationKind::LeakyRelu] {
                let mut c = vec![0.0; m * n];
                let epilogue = Epilogue {
                    bias: Some(&bias),
                    activation,
                    negative_slope: 0.25,
                };
                sgemm_with(
                    cpu,
                    1.0,
                    MatRef::row_major(&a, m, k),
                    MatRef::row_major(&b, k, n),
                    0.0,
                    MatMut::row_major(&mut c, m, n),
                    &epilogue,
                );
                let below = if activation == ActivationKind::Relu {
                    0.0
                } else {
                    0.25 * (0.5 - k as f32)
                };
                for (i, row) in c.chunks_exact(n).enumerate() {
                    for &v in row {
                        if i == 1 {
                            assert!(v.is_nan(), "{m}x{n}x{k} {activation:?}: {v}");
                        } else {
                            assert_eq!(v, below, "{m}x{n}x{k} {activation:?}");
                        }
                    }
                }
            }
        }
    });
}

#[test]
fn without_a_product_the_epilogue_still_applies() {
    let cpu = Cpu::with_threads(2).unwrap();
    let bias = [1.0, -3.0];
    let epilogue = Epilogue {
        bias: Some(&bias),
        activation: ActivationKind::Relu,
        negative_slope: 0.0,
    };
    let no_k = (MatRef::row_major(&[], 2, 0), MatRef::row_major(&[], 0, 2));
    let mut c = vec![1.0, 2.0, 3.0, 4.0];
    let out = MatMut::row_major(&mut c, 2, 2);
    sgemm_with(cpu.inner(), 1.0, no_k.0, no_k.1, 0.5, out, &epilogue);
    assert_eq!(c, [1.5, 0.0, 2.5, 0.0]);
    let nan = [f32::NAN; 4];
    let a = MatRef::row_major(&nan, 2, 2);
    let mut c = vec![f32::NAN; 4];
    sgemm_with(
        cpu.inner(),
        0.0,
        a,
        a,
        0.0,
        MatMut::row_major(&mut c, 2, 2),
        &epilogue,
    );
    assert_eq!(c, [1.0, 0.0, 1.0, 0.0]);
}

#[cfg(debug_assertions)]
#[test]
fn gelu_and_softmax_are_refused_by_debug_builds() {
    let cpu = Cpu::with_threads(1).unwrap();
    let a = [1.0; 4];
    for activation in [ActivationKind::Gelu, ActivationKind::Softmax] {
        let mut c = [0.0; 4];
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let a = MatRef::row_major(&a, 2, 2);
            let epilogue = Epilogue {
                bias: None,
                activation,
                negative_slope: 0.0,
            };
            sgemm_with(
                cpu.inner(),
                1.0,
                a,
                a,
                0.0,
                MatMut::row_major(&mut c, 2, 2),
                &epilogue,
            );
        }));
        assert!(r.is_err(), "{activation:?} was fused");
    }
}

fn geometry(batch: usize, size: usize, c: usize, k: usize, s: usize, pad: usize) -> PatchGeometry {
    PatchGeometry::square_kernel(batch, (size, size, c), k, s, pad)
}

#[test]
fn gathered_patches_multiply_like_the_patch_matrix() {
    // The forward product (patches times kernel) and the weight gradient's (patches
    // transposed times output gradient) against the explicit patch matrix: the seed
    // CNN's layers at batch 2 (long enough that `k` is blocked and split), same
    // padding, a stride of 2, and more than `KC` patch columns. Without padding the
    // forward reads the patches in place: output rows that are not whole strips, and
    // a stride of 2, too.
    on_every_backend(|cpu| {
        let geometries = [
            geometry(2, 12, 4, 3, 2, 0),
            geometry(2, 11, 4, 3, 2, 1),
            geometry(2, 32, 3, 3, 1, 0),
            geometry(2, 15, 32, 3, 1, 0),
            geometry(3, 13, 5, 3, 1, 0),
            geometry(2, 6, 64, 3, 1, 0),
            geometry(3, 9, 5, 3, 1, 1),
            geometry(1, 7, 50, 3, 1, 1),
        ];
        // Under Miri, the strided ones: read in place and gathered with padding.
        let geometries = if cfg!(miri) {
            &geometries[..2]
        } else {
            &geometries[..]
        };
        for &g in geometries {
            let mut rng = Rng::new(g.rows() as u64);
            let x = random(&mut rng, g.input_len());
            let patches = Patches { x: &x, geometry: g };
            let explicit = patches.explicit();
            let (rows, cols) = (g.rows(), g.cols());
            let matrix = MatRef::row_major(&explicit, rows, cols);
            let n = 19;
            let tol = |k: usize| 2e-5 * (k as f32).sqrt();
            let close = |got: &[f32], want: &[f32], k: usize, what: &str| {
                for (i, (g_, w)) in got.iter().zip(want).enumerate() {
                    assert!(
                        (g_ - w).abs() <= tol(k) * (1.0 + w.abs()),
                        "{what} {g:?} on {} threads: [{i}] = {g_}, want {w}",
                        cpu.pool.threads()
                    );
                }
            };

            let w = random(&mut rng, cols * n);
            let wm = MatRef::row_major(&w, cols, n);
            let mut want = vec![0.0; rows * n];
            reference(1.0, matrix, wm, 0.0, MatMut::row_major(&mut want, rows, n));
            let mut got = vec![f32::NAN; rows * n];
            let out = MatMut::row_major(&mut got, rows, n);
            sgemm_lhs(
                cpu,
                1.0,
                Lhs::Patches(patches),
                wm,
                0.0,
                out,
                &Epilogue::NONE,
            );
            close(&got, &want, cols, "forward");

            let dy = random(&mut rng, rows * n);
            let dym = MatRef::row_major(&dy, rows, n);
            let dw0 = random(&mut rng, cols * n);
            let mut want = dw0.clone();
            reference(
                1.0,
                matrix.t(),
                dym,
                1.0,
                MatMut::row_major(&mut want, cols, n),
            );
            let mut got = dw0;
            let out = MatMut::row_major(&mut got, cols, n);
            sgemm_lhs(
                cpu,
                1.0,
                Lhs::PatchesT(patches),
                dym,
                1.0,
                out,
                &Epilogue::NONE,
            );
            close(&got, &want, rows, "weight gradient");
        }
    });
}
