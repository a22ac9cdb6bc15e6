//! The AVX2 + FMA micro-kernel: a 6 x 16 tile held in twelve `ymm` accumulators, and
//! the transposing pack of `b` that needs the same instructions.
//!
//! Each step of `k` loads one row of `b` (two vectors), broadcasts six values of `a`
//! and issues twelve FMAs; with two FMA pipes that is six cycles of arithmetic against
//! eight loads, so the loop is bound by the FMA units, not by memory. The kernel is
//! compiled for every row count up to six, so that a ragged last strip of `a` costs
//! only its own rows.

use std::arch::x86_64::{
    __m256, _CMP_LT_OQ, _MM_HINT_T0, _mm_prefetch, _mm256_add_ps, _mm256_blendv_ps,
    _mm256_broadcast_ss, _mm256_cmp_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps,
    _mm256_mul_ps, _mm256_permute2f128_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_shuffle_ps,
    _mm256_storeu_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
};

use super::block::{MR, NR, Tile, TileAct};

// The register tile below is written out for exactly these sizes.
const _: () = assert!(MR == 6 && NR == 16);

/// Runs one `R x NR` tile (`R <= MR`); see [`Tile`] for the contract. Without `EPI`,
/// the tile's bias and activation are ignored (callers pass `t.has_epilogue()`). With
/// `RUNS`, `a` is read in runs (callers pass `t.a_jump != 0`); a compile-time switch,
/// so that each kernel has one loop and keeps its accumulators in registers.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and the pointers and strides in `t` must satisfy
/// [`Tile`]'s contract for `R` rows.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn tile<const R: usize, const EPI: bool, const RUNS: bool>(t: &Tile) {
    let mut acc: [[__m256; 2]; MR] = [[_mm256_setzero_ps(); 2]; MR];
    // Rows 0..3 hang off `a0` and rows 3..6 off `a3` at offsets 0, rs and 2 * rs.
    let (rs, rs2) = (t.a_rs, 2 * t.a_rs);
    let mut a0 = t.a;
    let mut a3 = t.a.wrapping_add(3 * rs);
    let mut b = t.b;
    // One step of `k`: a row of `b` times a column of `a`, into the accumulators.
    macro_rules! step {
        () => {
            // SAFETY: the contract of `Tile` makes the `NR` values at `b` and rows `0..R`
            // of `a` readable for every step `0..k`.
            unsafe {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                // Unrolled by hand so that every accumulator stays in a register; rows
                // at or past `R` compile away.
                macro_rules! row {
                    ($i:literal, $p:expr) => {
                        if $i < R {
                            let av = _mm256_broadcast_ss(&*$p);
                            acc[$i][0] = _mm256_fmadd_ps(av, b0, acc[$i][0]);
                            acc[$i][1] = _mm256_fmadd_ps(av, b1, acc[$i][1]);
                        }
                    };
                }
                row!(0, a0);
                row!(1, a0.add(rs));
                row!(2, a0.add(rs2));
                row!(3, a3);
                row!(4, a3.add(rs));
                row!(5, a3.add(rs2));
            }
            // `wrapping_add`: the pointers step one past the last column at the end.
            a0 = a0.wrapping_add(t.a_cs);
            a3 = a3.wrapping_add(t.a_cs);
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
            a3 = a3.wrapping_add(t.a_jump);
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
    let alpha = _mm256_set1_ps(t.alpha);
    let beta = _mm256_set1_ps(t.beta);
    let zero = _mm256_setzero_ps();
    let bias = if !EPI || t.bias.is_null() {
        None
    } else {
        // SAFETY: the contract of `Tile` makes the `NR` values at a non-null `bias`
        // readable.
        Some(unsafe { [_mm256_loadu_ps(t.bias), _mm256_loadu_ps(t.bias.add(8))] })
    };
    // `x < 0 ? f(x) : x` on both halves of a row; the ordered comparison is false for
    // NaN, which therefore propagates.
    let act = |v: __m256| match t.act {
        _ if !EPI => v,
        TileAct::Linear => v,
        // `max` returns its second operand when either is NaN or both are zeros, so
        // `max(0, v)` is exactly the comparison above (`-0` stays `-0`).
        TileAct::Relu => _mm256_max_ps(zero, v),
        TileAct::LeakyRelu(slope) => {
            let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(v, zero);
            _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(slope)), neg)
        }
    };
    for (i, row) in acc.iter().enumerate().take(R) {
        // SAFETY: the contract of `Tile` makes the `R x NR` block at `c` writable (and
        // readable when `beta != 0`), rows `c_rs` apart.
        unsafe {
            let c = t.c.add(i * t.c_rs);
            let (mut v0, mut v1) = (row[0], row[1]);
            if t.alpha != 1.0 {
                v0 = _mm256_mul_ps(v0, alpha);
                v1 = _mm256_mul_ps(v1, alpha);
            }
            // `beta == 0` must not read `c` (it may hold NaN); `beta == 1` is the common
            // accumulate of later `k` blocks, one add instead of an FMA chain.
            if t.beta == 1.0 {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(c));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(c.add(8)));
            } else if t.beta != 0.0 {
                v0 = _mm256_fmadd_ps(_mm256_loadu_ps(c), beta, v0);
                v1 = _mm256_fmadd_ps(_mm256_loadu_ps(c.add(8)), beta, v1);
            }
            if let Some([b0, b1]) = bias {
                v0 = _mm256_add_ps(v0, b0);
                v1 = _mm256_add_ps(v1, b1);
            }
            let (v0, v1) = (act(v0), act(v1));
            _mm256_storeu_ps(c, v0);
            _mm256_storeu_ps(c.add(8), v1);
        }
    }
}

/// Packs a full strip of a `b` stored transposed: `dst[p * NR + j] = src[j * cs + p]`
/// for `j < NR` and `p < dst.len() / NR`, transposing 8 x 8 blocks in registers.
///
/// # Safety
/// The CPU must support AVX2. (The lengths, `(NR - 1) * cs + kc` values in `src` and
/// `kc * NR` in `dst`, are asserted.)
#[target_feature(enable = "avx2")]
pub(super) unsafe fn transpose_strip(dst: &mut [f32], src: &[f32], cs: usize) {
    let kc = dst.len() / NR;
    assert!(dst.len() == kc * NR && src.len() >= (NR - 1) * cs + kc);
    let full = kc / 8 * 8;
    for p in (0..full).step_by(8) {
        for half in 0..NR / 8 {
            // SAFETY: rows `j = half * 8 + r < NR` read `src[j * cs + p..][..8]`, with
            // `p + 8 <= kc`, inside `src` by the assertion; the stores write
            // `dst[(p + q) * NR + half * 8..][..8]` for `q < 8`, inside `dst`.
            unsafe {
                let s = src.as_ptr().add(half * 8 * cs + p);
                let r: [__m256; 8] = std::array::from_fn(|r| _mm256_loadu_ps(s.add(r * cs)));
                let t = transpose8(r);
                let d = dst.as_mut_ptr().add(p * NR + half * 8);
                for (q, v) in t.iter().enumerate() {
                    _mm256_storeu_ps(d.add(q * NR), *v);
                }
            }
        }
    }
    for p in full..kc {
        for j in 0..NR {
            dst[p * NR + j] = src[j * cs + p];
        }
    }
}

/// The transpose of the 8 x 8 matrix whose rows are `r`.
#[target_feature(enable = "avx2")]
#[inline]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}
