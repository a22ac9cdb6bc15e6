//! The transforms of whole tiles with AVX2 intrinsics: eight channels per vector,
//! straight-line code that keeps the block in registers.
use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    _mm256_sub_ps,
};

use super::LANES;
use super::transforms::channel_offset;

/// `V = Bᵀ d B` for one tile inside the image: pixel `(a, b)` of the 4x4 block,
/// channel `k`, is read at `x + a * row + b * c + k`; position `(a, b)` of channel
/// `k` is written at `v + (4 * a + b) * plane + channel_offset(k, strip)`.
///
/// # Safety
/// The CPU must support AVX2; `c` must be a multiple of 8; those reads and writes
/// must be in bounds, the writes not aliased.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn input_tile(
    x: *const f32,
    row: usize,
    c: usize,
    v: *mut f32,
    plane: usize,
    strip: usize,
) {
    for k in (0..c).step_by(LANES) {
        // Eight channels never straddle two strips: `LANES` divides `PACKED_STRIP`.
        let ko = channel_offset(k, strip);
        // SAFETY: the caller's contract covers every offset below.
        unsafe {
            macro_rules! row {
                ($a:expr) => {
                    [
                        _mm256_loadu_ps(x.add($a * row + k)),
                        _mm256_loadu_ps(x.add($a * row + c + k)),
                        _mm256_loadu_ps(x.add($a * row + 2 * c + k)),
                        _mm256_loadu_ps(x.add($a * row + 3 * c + k)),
                    ]
                };
            }
            // Row `a` of `Bᵀ d` (`t`), transformed along the row: row `a` of `V`.
            macro_rules! emit {
                ($a:expr, $t:expr) => {
                    let t = $t;
                    let out = v.add($a * 4 * plane + ko);
                    _mm256_storeu_ps(out, _mm256_sub_ps(t[0], t[2]));
                    _mm256_storeu_ps(out.add(plane), _mm256_add_ps(t[1], t[2]));
                    _mm256_storeu_ps(out.add(2 * plane), _mm256_sub_ps(t[2], t[1]));
                    _mm256_storeu_ps(out.add(3 * plane), _mm256_sub_ps(t[1], t[3]));
                };
            }
            let d2 = row!(2);
            let d0 = row!(0);
            emit!(0, [0, 1, 2, 3].map(|b| _mm256_sub_ps(d0[b], d2[b])));
            let d1 = row!(1);
            emit!(1, [0, 1, 2, 3].map(|b| _mm256_add_ps(d1[b], d2[b])));
            emit!(2, [0, 1, 2, 3].map(|b| _mm256_sub_ps(d2[b], d1[b])));
            let d3 = row!(3);
            emit!(3, [0, 1, 2, 3].map(|b| _mm256_sub_ps(d1[b], d3[b])));
        }
    }
}

/// `Y = Aᵀ M A` plus the bias (unless null), then ReLU if `relu`, for one tile
/// whose four pixels exist: position `(a, b)` of channel `k` is read at
/// `m + (4 * a + b) * plane + k`; output pixel `(a, b)` is written at
/// `y + a * row + b * c + k`.
///
/// # Safety
/// The CPU must support AVX2; `c` must be a multiple of 8; those reads and writes
/// (and `c` values at a non-null `bias`) must be in bounds, the writes not aliased.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn output_tile(
    m: *const f32,
    plane: usize,
    y: *mut f32,
    row: usize,
    c: usize,
    bias: *const f32,
    relu: bool,
) {
    for k in (0..c).step_by(LANES) {
        // SAFETY: the caller's contract covers every offset below.
        unsafe {
            macro_rules! row {
                ($a:expr) => {
                    [0, 1, 2, 3].map(|b| _mm256_loadu_ps(m.add((4 * $a + b) * plane + k)))
                };
            }
            let (m1, m2) = (row!(1), row!(2));
            let (m0, m3) = (row!(0), row!(3));
            // The rows of `Aᵀ M`: `m0 + m1 + m2` and `m1 - m2 - m3`.
            let s0 = [0, 1, 2, 3].map(|b| _mm256_add_ps(_mm256_add_ps(m0[b], m1[b]), m2[b]));
            let s1 = [0, 1, 2, 3].map(|b| _mm256_sub_ps(_mm256_sub_ps(m1[b], m2[b]), m3[b]));
            let bias = if bias.is_null() {
                _mm256_setzero_ps()
            } else {
                _mm256_loadu_ps(bias.add(k))
            };
            for (a, s) in [s0, s1].into_iter().enumerate() {
                let y0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s[0], s[1]), s[2]), bias);
                let y1 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s[1], s[2]), s[3]), bias);
                // `max(0, v)` returns `v` when it is NaN: ReLU lets NaN through.
                let (y0, y1) = if relu {
                    let zero = _mm256_setzero_ps();
                    (_mm256_max_ps(zero, y0), _mm256_max_ps(zero, y1))
                } else {
                    (y0, y1)
                };
                _mm256_storeu_ps(y.add(a * row + k), y0);
                _mm256_storeu_ps(y.add(a * row + c + k), y1);
            }
        }
    }
}

/// `Z = A dY Aᵀ` for one tile: pixel `(a, b)` of the 2x2 block, channel `k`, is
/// read at `dy + a * row + b * c + k`; position `(a, b)` of channel `k` is written
/// at `z + (4 * a + b) * plane + k`.
///
/// # Safety
/// The CPU must support AVX2; `c` must be a multiple of 8; those reads and writes
/// must be in bounds, the writes not aliased.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn output_gradient_tile(
    dy: *const f32,
    row: usize,
    c: usize,
    z: *mut f32,
    plane: usize,
) {
    for k in (0..c).step_by(LANES) {
        // SAFETY: the caller's contract covers every offset below.
        unsafe {
            let (y00, y01) = (_mm256_loadu_ps(dy.add(k)), _mm256_loadu_ps(dy.add(c + k)));
            let (y10, y11) = (
                _mm256_loadu_ps(dy.add(row + k)),
                _mm256_loadu_ps(dy.add(row + c + k)),
            );
            let zero = _mm256_setzero_ps();
            // `A dY`: four rows of two; each row `[l, r]` becomes
            // `[l, l + r, l - r, -r]` along the row.
            let rows: [[__m256; 2]; 4] = [
                [y00, y01],
                [_mm256_add_ps(y00, y10), _mm256_add_ps(y01, y11)],
                [_mm256_sub_ps(y00, y10), _mm256_sub_ps(y01, y11)],
                [_mm256_sub_ps(zero, y10), _mm256_sub_ps(zero, y11)],
            ];
            for (a, [l, r]) in rows.into_iter().enumerate() {
                let out = z.add(4 * a * plane + k);
                _mm256_storeu_ps(out, l);
                _mm256_storeu_ps(out.add(plane), _mm256_add_ps(l, r));
                _mm256_storeu_ps(out.add(2 * plane), _mm256_sub_ps(l, r));
                _mm256_storeu_ps(out.add(3 * plane), _mm256_sub_ps(zero, r));
            }
        }
    }
}

/// `dx += B M Bᵀ` for one tile: position `(a, b)` of channel `k` is read at
/// `m + (4 * a + b) * plane + k`; pixel `(a, b)` of the tile's input block is
/// added to at `dx + a * row + b * c + k`.
///
/// # Safety
/// The CPU must support AVX2; `c` must be a multiple of 8; those reads and writes
/// must be in bounds, the writes not aliased.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn input_gradient_tile(
    m: *const f32,
    plane: usize,
    dx: *mut f32,
    row: usize,
    c: usize,
) {
    // `B x` for four inputs: `[x0, x1 - x2 + x3, x1 + x2 - x0, -x3]`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn b_of(x: [__m256; 4]) -> [__m256; 4] {
        let zero = _mm256_setzero_ps();
        [
            x[0],
            _mm256_add_ps(_mm256_sub_ps(x[1], x[2]), x[3]),
            _mm256_sub_ps(_mm256_add_ps(x[1], x[2]), x[0]),
            _mm256_sub_ps(zero, x[3]),
        ]
    }
    for k in (0..c).step_by(LANES) {
        // SAFETY: the caller's contract covers every offset below.
        unsafe {
            let at = |a: usize, b: usize| _mm256_loadu_ps(m.add((4 * a + b) * plane + k));
            // `B M`, column by column: `t[b][a]`.
            let t = [0, 1, 2, 3].map(|b| b_of([at(0, b), at(1, b), at(2, b), at(3, b)]));
            // Row `a` gathers element `a` of each column: an index, not an iterator.
            #[allow(clippy::needless_range_loop)]
            for a in 0..4 {
                // `(B M) Bᵀ`: row `a`, transformed along the row.
                let r = b_of([t[0][a], t[1][a], t[2][a], t[3][a]]);
                for (b, v) in r.into_iter().enumerate() {
                    let out = dx.add(a * row + b * c + k);
                    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), v));
                }
            }
        }
    }
}
