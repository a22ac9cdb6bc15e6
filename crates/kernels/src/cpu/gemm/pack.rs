//! Copies of `a` and `b` into the layouts the micro-kernel streams through.
//!
//! A strip of `a` is `mr` rows wide (the micro-kernel's tile rows): step `p` holds
//! `a[i0..i0 + mr][p]` contiguously. A
//! strip of `b` is `NR` columns wide: step `p` holds `b[p][j0..j0 + NR]` contiguously.
//! Lanes past the matrix's edge are zero, so that edge tiles compute harmless zeros
//! (and no denormal or NaN garbage slows the FMAs down).

use super::MatRef;
use super::block::{Isa, NR};

/// Packs rows `i0..i0 + rows` (`rows <= mr`) and columns `p0..p0 + dst.len() / mr` of
/// `a` into one strip of `mr` rows.
///
/// Only an `a` with neither stride 1 is packed (the planner reads the others in
/// place), so a plain gather does. The caller has checked that the view lies inside
/// its slice.
pub(super) fn a_strip(
    dst: &mut [f32],
    a: &MatRef<'_>,
    i0: usize,
    rows: usize,
    p0: usize,
    mr: usize,
) {
    debug_assert!(rows <= mr && dst.len().is_multiple_of(mr));
    for (p, d) in dst.chunks_exact_mut(mr).enumerate() {
        for (i, v) in d.iter_mut().enumerate() {
            *v = if i < rows { a.at(i0 + i, p0 + p) } else { 0.0 };
        }
    }
}

/// Packs columns `j0..j0 + cols` (`cols <= NR`) and rows `p0..p0 + dst.len() / NR` of
/// `b` into one strip. The caller has checked that the view lies inside its slice.
pub(super) fn b_strip(
    dst: &mut [f32],
    b: &MatRef<'_>,
    p0: usize,
    j0: usize,
    cols: usize,
    isa: Isa,
) {
    debug_assert!(cols <= NR && dst.len().is_multiple_of(NR));
    let kc = dst.len() / NR;
    if cols < NR {
        dst.fill(0.0);
    }
    if b.col_stride == 1 {
        for (p, d) in dst.chunks_exact_mut(NR).enumerate() {
            let at = (p0 + p) * b.row_stride + j0;
            // Copies of known length compile to moves, not `memcpy` calls.
            if cols == NR {
                d.copy_from_slice(&b.data[at..at + NR]);
            } else {
                copy_short(d, &b.data[at..at + cols]);
            }
        }
    } else if b.row_stride == 1 {
        if cols == NR && transpose_simd(dst, b, p0, j0, isa) {
            return;
        }
        // Transposed storage: read each column contiguously.
        for j in 0..cols {
            let at = (j0 + j) * b.col_stride + p0;
            for (d, &v) in dst.chunks_exact_mut(NR).zip(&b.data[at..at + kc]) {
                d[j] = v;
            }
        }
    } else {
        for (p, d) in dst.chunks_exact_mut(NR).enumerate() {
            for (j, v) in d[..cols].iter_mut().enumerate() {
                *v = b.at(p0 + p, j0 + j);
            }
        }
    }
}

/// Packs a full strip of a `b` stored transposed with a transpose in registers (eight
/// steps at a time, instead of one scattered store per value) when `isa` allows;
/// returns whether it did.
fn transpose_simd(dst: &mut [f32], b: &MatRef<'_>, p0: usize, j0: usize, isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    if isa.has_avx2() {
        let kc = dst.len() / NR;
        let at = j0 * b.col_stride + p0;
        let src = &b.data[at..at + (NR - 1) * b.col_stride + kc];
        // SAFETY: `has_avx2` holds only where the CPU has AVX2.
        unsafe { super::kernel_avx2::transpose_strip(dst, src, b.col_stride) };
        return true;
    }
    let _ = (dst, b, p0, j0, isa);
    false
}

/// `dst[i] = src[i]` for `i < src.len()`, zero after that: a loop over the fixed
/// length of `dst` (`NR`), which LLVM unrolls, where a plain copy of `src.len()` values
/// would become a `memcpy` call per step.
#[inline]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    for (i, d) in dst.iter_mut().enumerate() {
        *d = src.get(i).copied().unwrap_or(0.0);
    }
}
