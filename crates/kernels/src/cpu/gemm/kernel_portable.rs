//! The plain-Rust micro-kernel, for CPUs without AVX2 and FMA and for other
//! architectures. Written so that LLVM keeps the accumulators in vector registers
//! (SSE on baseline x86-64, NEON on aarch64).

use super::block::{MR, NR, Tile, TileAct};

/// Runs one `R x NR` tile (`R <= MR`); see [`Tile`] for the contract.
///
/// # Safety
/// The pointers and strides in `t` must satisfy [`Tile`]'s contract for `R` rows.
#[inline]
pub(super) unsafe fn tile<const R: usize>(t: &Tile) {
    const { assert!(R <= MR) };
    let mut acc = [[0.0f32; NR]; R];
    // Stable Rust has no portable prefetch: the hardware prefetcher is on its own here.
    let _ = (t.pf, t.pf_step, t.pf_n);
    let (mut a, mut b) = (t.a, t.b);
    for p in 0..t.k {
        if t.a_jump != 0 && p > 0 && p % t.a_run == 0 {
            // The next run of `a` (see `Tile::a_jump`).
            a = a.wrapping_add(t.a_jump);
        }
        // SAFETY: the contract of `Tile` makes rows `0..R` of `a` and the `NR`
        // values at `b` readable for every step `0..k`.
        let brow: [f32; NR] = unsafe { b.cast::<[f32; NR]>().read_unaligned() };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            let av = unsafe { *a.add(i * t.a_rs) };
            for (r, bv) in row.iter_mut().zip(&brow) {
                // Not `mul_add`: without hardware FMA that is a slow libm call.
                *r += av * bv;
            }
        }
        // `wrapping_add` because the pointers step one past the last column at the end.
        a = a.wrapping_add(t.a_cs);
        b = b.wrapping_add(t.b_rs);
    }
    let bias: [f32; NR] = if t.bias.is_null() {
        [0.0; NR]
    } else {
        // SAFETY: the contract of `Tile` makes the `NR` values at a non-null `bias`
        // readable.
        unsafe { t.bias.cast::<[f32; NR]>().read_unaligned() }
    };
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: the contract of `Tile` makes the `R x NR` block at `c` writable (and
        // readable when `beta != 0`), rows `c_rs` apart, with no other live reference.
        let out = unsafe { std::slice::from_raw_parts_mut(t.c.add(i * t.c_rs), NR) };
        if t.beta == 0.0 {
            for (o, r) in out.iter_mut().zip(row) {
                *o = t.alpha * r;
            }
        } else {
            for (o, r) in out.iter_mut().zip(row) {
                *o = t.alpha * r + t.beta * *o;
            }
        }
        if !t.bias.is_null() {
            out.iter_mut().zip(&bias).for_each(|(o, b)| *o += b);
        }
        match t.act {
            TileAct::Linear => {}
            // `x < 0` is false for NaN, which therefore propagates.
            TileAct::Relu => out.iter_mut().for_each(|o| {
                if *o < 0.0 {
                    *o = 0.0;
                }
            }),
            TileAct::LeakyRelu(slope) => out.iter_mut().for_each(|o| {
                if *o < 0.0 {
                    *o *= slope;
                }
            }),
        }
    }
}
