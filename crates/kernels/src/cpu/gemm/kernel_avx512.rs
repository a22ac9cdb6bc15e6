//! The AVX-512 micro-kernel: up to `MR_AVX512` (8) rows by one or two strips of `b`
//! (16 or 32 columns), the accumulators in `zmm` registers.
//!
//! Each step of `k` loads a row of each strip (one vector a strip), broadcasts one
//! value of `a` per row and issues one FMA per accumulator: with two strips, 16 FMAs
//! against 10 loads for 8 rows, so the loop is bound by the two FMA pipes, not by the
//! loads, and 16 accumulators cover the FMA's latency. The strips of `b` are the same
//! 16-column strips as the AVX2 kernel's (two of them side by side), so that packing
//! is the same for every kernel.

use std::arch::x86_64::{
    __m512, _CMP_LT_OQ, _MM_HINT_T0, _mm_prefetch, _mm512_add_ps, _mm512_cmp_ps_mask,
    _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_mul_ps, _mm512_max_ps, _mm512_mul_ps,
    _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
};

use super::block::{MR_AVX512, NR, Tile, TileAct};

// One vector of `b` is one strip, and the rows below are written out for eight.
const _: () = assert!(NR == 16 && MR_AVX512 == 8);

/// Runs one `R x (W * NR)` tile (`R <= MR_AVX512`, `W` strips of `b`, the second at
/// `b + b_next`); see [`Tile`] for the contract. `EPI` and `RUNS` are as for the
/// AVX2 kernel: compile-time switches, so that each kernel has one loop.
///
/// # Safety
/// The CPU must support AVX-512F, and the pointers and strides in `t` must satisfy
/// [`Tile`]'s contract for `R` rows and `W * NR` columns.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn tile<const R: usize, const W: usize, const EPI: bool, const RUNS: bool>(
    t: &Tile,
) {
    const { assert!(R <= MR_AVX512 && (W == 1 || W == 2)) };
    // Rows at or past `R` are never touched, and compile away.
    let mut acc: [[__m512; 2]; MR_AVX512] = [[_mm512_setzero_ps(); 2]; MR_AVX512];
    // Rows hang off `a0` and `a4`, four each, at offsets 0, rs, 2 rs and 3 rs.
    let (rs, rs2, rs3) = (t.a_rs, 2 * t.a_rs, 3 * t.a_rs);
    let mut a0 = t.a;
    let mut a4 = t.a.wrapping_add(4 * rs);
    let mut b = t.b;
    let b_next = t.b_next;
    macro_rules! step {
        () => {
            // SAFETY: the contract of `Tile` makes the `W * NR` values at `b` (the
            // second strip at `b + b_next`) and rows `0..R` of `a` readable for every
            // step `0..k`.
            unsafe {
                let b0 = _mm512_loadu_ps(b);
                let b1 = if W == 2 {
                    _mm512_loadu_ps(b.add(b_next))
                } else {
                    b0
                };
                // Unrolled by hand so that every accumulator stays in a register; rows
                // at or past `R` compile away.
                macro_rules! row {
                    ($i:literal, $p:expr) => {
                        if $i < R {
                            let av = _mm512_set1_ps(*$p);
                            acc[$i][0] = _mm512_fmadd_ps(av, b0, acc[$i][0]);
                            if W == 2 {
                                acc[$i][1] = _mm512_fmadd_ps(av, b1, acc[$i][1]);
                            }
                        }
                    };
                }
                row!(0, a0);
                row!(1, a0.add(rs));
                row!(2, a0.add(rs2));
                row!(3, a0.add(rs3));
                row!(4, a4);
                row!(5, a4.add(rs));
                row!(6, a4.add(rs2));
                row!(7, a4.add(rs3));
            }
            // `wrapping_add`: the pointers step one past the last column at the end.
            a0 = a0.wrapping_add(t.a_cs);
            a4 = a4.wrapping_add(t.a_cs);
            b = b.wrapping_add(t.b_rs);
        };
    }
    if RUNS {
        // Runs of `a` (see `Tile::a_jump`): its pointers jump after each one.
        let mut left = t.k;
        while left > 0 {
            let run = t.a_run.min(left);
            for _ in 0..run {
                step!();
            }
            a0 = a0.wrapping_add(t.a_jump);
            a4 = a4.wrapping_add(t.a_jump);
            left -= run;
        }
    } else {
        // The first `pf_n` steps each prefetch one line (see `Tile::pf`).
        let pf_n = t.pf_n.min(t.k);
        let mut pf = t.pf;
        for _ in 0..pf_n {
            _mm_prefetch::<_MM_HINT_T0>(pf.cast::<i8>());
            pf = pf.wrapping_add(t.pf_step);
            step!();
        }
        for _ in pf_n..t.k {
            step!();
        }
    }
    let alpha = _mm512_set1_ps(t.alpha);
    let beta = _mm512_set1_ps(t.beta);
    let zero = _mm512_setzero_ps();
    let bias = if !EPI || t.bias.is_null() {
        None
    } else {
        // SAFETY: the contract of `Tile` makes the `W * NR` values at a non-null
        // `bias` readable.
        Some(unsafe {
            let b0 = _mm512_loadu_ps(t.bias);
            [
                b0,
                if W == 2 {
                    _mm512_loadu_ps(t.bias.add(NR))
                } else {
                    b0
                },
            ]
        })
    };
    // `x < 0 ? f(x) : x`; the ordered comparison is false for NaN, which therefore
    // propagates.
    let act = |v: __m512| match t.act {
        _ if !EPI => v,
        TileAct::Linear => v,
        // `max` returns its second operand when either is NaN or both are zeros, so
        // `max(0, v)` is exactly the comparison above (`-0` stays `-0`).
        TileAct::Relu => _mm512_max_ps(zero, v),
        TileAct::LeakyRelu(slope) => {
            let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, zero);
            _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(slope))
        }
    };
    // Every index below is a literal, like those of the FMAs above, so that `acc`
    // never leaves the registers (a loop over it kept a copy on the stack, stored at
    // every step).
    macro_rules! store {
        ($i:literal, $h:literal) => {
            if $i < R && $h < W {
                // SAFETY: the contract of `Tile` makes the `R x (W * NR)` block at `c`
                // writable (and readable when `beta != 0`), rows `c_rs` apart.
                unsafe {
                    let c = t.c.add($i * t.c_rs + $h * NR);
                    let mut v = acc[$i][$h];
                    if t.alpha != 1.0 {
                        v = _mm512_mul_ps(v, alpha);
                    }
                    // `beta == 0` must not read `c` (it may hold NaN); `beta == 1` is the
                    // common accumulate of later `k` blocks, one add instead of an FMA.
                    if t.beta == 1.0 {
                        v = _mm512_add_ps(v, _mm512_loadu_ps(c));
                    } else if t.beta != 0.0 {
                        v = _mm512_fmadd_ps(_mm512_loadu_ps(c), beta, v);
                    }
                    if let Some(bias) = bias {
                        v = _mm512_add_ps(v, bias[$h]);
                    }
                    _mm512_storeu_ps(c, act(v));
                }
            }
        };
        ($($i:literal)*) => {
            $(store!($i, 0); store!($i, 1);)*
        };
    }
    store!(0 1 2 3 4 5 6 7);
}
