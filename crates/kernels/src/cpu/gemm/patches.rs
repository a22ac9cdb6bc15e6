//! The patch matrix of a convolution as an operand that is never built whole
//! (implicit im2col).
//!
//! Row `i` of the patch matrix is the receptive field of output pixel `i` (counted over
//! the batch, row-major within each image); column `p` is the kernel tap
//! `(ky, kx, c)`, so that the kernel `[kh, kw, c_in, c_out]` is already the right-hand
//! matrix. In NHWC a row is `kh` contiguous runs of `kw * c_in` values of the input,
//! `dilation_h` input rows apart (1 for images; a 1-D convolution's dilation, time
//! being the height).
//!
//! The product gathers each `mc x kc` block of it (or of its transpose, for the weight
//! gradient) into its worker's packing buffer just before the micro-kernel reads the
//! block: the gathered values are read from L2 while they are still there, where a
//! patch matrix built beforehand (nine times the input for a 3x3 kernel) would make a
//! round trip through memory.

use std::ops::Range;

use super::block::Isa;

/// The geometry of one convolution, in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PatchGeometry {
    pub(crate) batch: usize,
    pub(crate) in_h: usize,
    pub(crate) in_w: usize,
    pub(crate) in_c: usize,
    pub(crate) out_h: usize,
    pub(crate) out_w: usize,
    pub(crate) kernel_h: usize,
    pub(crate) kernel_w: usize,
    pub(crate) stride_h: usize,
    pub(crate) stride_w: usize,
    pub(crate) pad_top: usize,
    pub(crate) pad_left: usize,
    pub(crate) dilation_h: usize,
}

impl PatchGeometry {
    /// Rows of the patch matrix: output pixels over the batch.
    pub(crate) fn rows(&self) -> usize {
        self.batch * self.out_h * self.out_w
    }

    /// Columns of the patch matrix: `kh * kw * c_in`.
    pub(crate) fn cols(&self) -> usize {
        self.kernel_h * self.kernel_w * self.in_c
    }

    /// Input values over the batch.
    pub(crate) fn input_len(&self) -> usize {
        self.batch * self.in_h * self.in_w * self.in_c
    }

    /// Input rows one patch spans: `dilation_h * (kh - 1) + 1`.
    fn span_h(&self) -> usize {
        self.dilation_h * (self.kernel_h - 1) + 1
    }

    /// `batch` images of `ih x iw x c` under a square kernel of side `k`, stride `s`
    /// and padding `pad` on every side.
    #[cfg(test)]
    pub(crate) fn square_kernel(
        batch: usize,
        (ih, iw, c): (usize, usize, usize),
        k: usize,
        s: usize,
        pad: usize,
    ) -> Self {
        Self {
            batch,
            in_h: ih,
            in_w: iw,
            in_c: c,
            out_h: (ih + 2 * pad - k) / s + 1,
            out_w: (iw + 2 * pad - k) / s + 1,
            kernel_h: k,
            kernel_w: k,
            stride_h: s,
            stride_w: s,
            pad_top: pad,
            pad_left: pad,
            dilation_h: 1,
        }
    }
}

/// The patch matrix of the NHWC images `x`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Patches<'a> {
    pub(crate) x: &'a [f32],
    pub(crate) geometry: PatchGeometry,
}

/// Rows of the patch matrix that the micro-kernel reads straight from the images: a
/// patch is `kh` runs of `kw * c_in` values, `dilation_h` input rows apart.
#[derive(Clone, Copy, Debug)]
pub(super) struct InPlace {
    /// From one output pixel's patch to the next one's in the same output row.
    pub(super) row_stride: usize,
    /// Columns per run (`kw * c_in`).
    pub(super) run: usize,
    /// What a pointer that stepped through a run adds to reach the next run.
    pub(super) jump: usize,
}

impl Patches<'_> {
    /// How the micro-kernel reads the block of columns `cols` in place, if it can:
    /// whole patches (`cols` is all of them), no padding on any side, and a patch
    /// short enough to be one block of `k`.
    pub(super) fn in_place(&self, cols: Range<usize>, kc_max: usize) -> Option<InPlace> {
        let g = &self.geometry;
        let whole = cols.start == 0 && cols.end == g.cols() && g.cols() <= kc_max;
        let inside = g.pad_top == 0
            && g.pad_left == 0
            && g.out_h > 0
            && g.out_w > 0
            && (g.out_h - 1) * g.stride_h + g.span_h() <= g.in_h
            && (g.out_w - 1) * g.stride_w + g.kernel_w <= g.in_w;
        (whole && inside).then(|| {
            let run = g.kernel_w * g.in_c;
            InPlace {
                row_stride: g.stride_w * g.in_c,
                run,
                jump: g.dilation_h * g.in_w * g.in_c - run,
            }
        })
    }

    /// Rows `first..first + count` cut where an output row ends: `(row, len, at)` for
    /// each piece, `at` the index in `x` where row `row`'s patch starts (see
    /// [`Self::in_place`]).
    pub(super) fn row_pieces(
        &self,
        first: usize,
        count: usize,
    ) -> impl Iterator<Item = (usize, usize, usize)> {
        let g = self.geometry;
        let end = first + count;
        let mut row = first;
        std::iter::from_fn(move || {
            if row >= end {
                return None;
            }
            let (image, pixel) = (row / (g.out_h * g.out_w), row % (g.out_h * g.out_w));
            let (oy, ox) = (pixel / g.out_w, pixel % g.out_w);
            let len = (g.out_w - ox).min(end - row);
            let at = ((image * g.in_h + oy * g.stride_h) * g.in_w + ox * g.stride_w) * g.in_c;
            let piece = (row, len, at);
            row += len;
            Some(piece)
        })
    }

    /// Writes columns `cols` of rows `first..first + count` to `dst`, row `r` at
    /// `dst[r * stride..][..cols.len()]`: zeros where the kernel hangs over the
    /// padding. `isa` picks the widest copies the CPU has.
    pub(super) fn gather(
        &self,
        first: usize,
        count: usize,
        cols: Range<usize>,
        dst: &mut [f32],
        stride: usize,
        isa: Isa,
    ) {
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx512` is only chosen where the CPU has AVX-512F.
            Isa::Avx512 => unsafe { self.gather_avx512(first, count, cols, dst, stride) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2Fma` is only chosen where the CPU has AVX2.
            Isa::Avx2Fma => unsafe { self.gather_avx2(first, count, cols, dst, stride) },
            Isa::Portable => self.gather_with(first, count, cols, dst, stride),
        }
    }

    /// [`Self::gather`] compiled for AVX2: a run of up to 16 values is two vector
    /// moves.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn gather_avx2(
        &self,
        first: usize,
        count: usize,
        cols: Range<usize>,
        dst: &mut [f32],
        stride: usize,
    ) {
        self.gather_with(first, count, cols, dst, stride);
    }

    /// [`Self::gather`] compiled for AVX-512: a run of 16 values is one vector move.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn gather_avx512(
        &self,
        first: usize,
        count: usize,
        cols: Range<usize>,
        dst: &mut [f32],
        stride: usize,
    ) {
        self.gather_with(first, count, cols, dst, stride);
    }

    #[inline(always)]
    fn gather_with(
        &self,
        first: usize,
        count: usize,
        cols: Range<usize>,
        dst: &mut [f32],
        stride: usize,
    ) {
        let g = &self.geometry;
        if cols.is_empty() || count == 0 {
            return;
        }
        let run = g.kernel_w * g.in_c;
        let row_len = g.in_w * g.in_c;
        let tap_step = g.dilation_h * row_len;
        let image_len = g.in_h * row_len;
        let whole = cols.start == 0 && cols.end == g.cols();
        // The output pixel of row `first`, then stepped along without divisions.
        let per_image = g.out_h * g.out_w;
        let (mut n, r) = (first / per_image, first % per_image);
        let (mut oy, mut ox) = (r / g.out_w, r % g.out_w);
        for r in 0..count {
            let dst = &mut dst[r * stride..r * stride + cols.len()];
            let image = &self.x[n * image_len..(n + 1) * image_len];
            let y0 = (oy * g.stride_h) as isize - g.pad_top as isize;
            let x0 = (ox * g.stride_w) as isize - g.pad_left as isize;
            let inside_x = x0 >= 0 && x0 as usize + g.kernel_w <= g.in_w;
            let inside = inside_x && y0 >= 0 && y0 as usize + g.span_h() <= g.in_h;
            if inside && whole {
                // The common case, a whole patch away from the padding: one run per
                // kernel row, each at a fixed step through the image.
                let at = y0 as usize * row_len + x0 as usize * g.in_c;
                let src = &image[at..at + (g.kernel_h - 1) * tap_step + run];
                for (ky, d) in dst.chunks_exact_mut(run).enumerate() {
                    copy_run(d, &src[ky * tap_step..ky * tap_step + run]);
                }
            } else {
                self.gather_edge(image, (y0, x0), inside_x, cols.clone(), dst);
            }
            ox += 1;
            if ox == g.out_w {
                ox = 0;
                oy += 1;
                if oy == g.out_h {
                    oy = 0;
                    n += 1;
                }
            }
        }
    }

    /// One row's columns `cols` where the kernel may hang over the padding, or only
    /// part of the row is asked for.
    #[inline(always)]
    fn gather_edge(
        &self,
        image: &[f32],
        (y0, x0): (isize, isize),
        inside_x: bool,
        cols: Range<usize>,
        dst: &mut [f32],
    ) {
        let g = &self.geometry;
        let run = g.kernel_w * g.in_c;
        let row_len = g.in_w * g.in_c;
        for ky in cols.start / run..(cols.end - 1) / run + 1 {
            // The part of this kernel row's run that `cols` asks for.
            let seg = ky * run;
            let lo = cols.start.max(seg);
            let hi = cols.end.min(seg + run);
            let d = &mut dst[lo - cols.start..hi - cols.start];
            let y = y0 + (ky * g.dilation_h) as isize;
            if y < 0 || y >= g.in_h as isize {
                d.fill(0.0);
                continue;
            }
            let row = &image[y as usize * row_len..(y as usize + 1) * row_len];
            if inside_x {
                let s = x0 as usize * g.in_c + (lo - seg);
                copy_run(d, &row[s..s + (hi - lo)]);
            } else {
                edge_run(g, row, x0, lo - seg, d);
            }
        }
    }
}

/// The values `from..from + d.len()` of one kernel row's run at a left or right edge,
/// where some kernel columns fall on the padding: one kernel column at a time.
fn edge_run(g: &PatchGeometry, row: &[f32], x0: isize, from: usize, d: &mut [f32]) {
    let mut q = from;
    let end = from + d.len();
    while q < end {
        let (kx, c) = (q / g.in_c, q % g.in_c);
        let len = (g.in_c - c).min(end - q);
        let d = &mut d[q - from..q - from + len];
        let xx = x0 + kx as isize;
        if xx < 0 || xx >= g.in_w as isize {
            d.fill(0.0);
        } else {
            let s = xx as usize * g.in_c + c;
            d.copy_from_slice(&row[s..s + len]);
        }
        q += len;
    }
}

#[cfg(test)]
impl Patches<'_> {
    /// The patch matrix written out from its definition.
    pub(crate) fn explicit(&self) -> Vec<f32> {
        let (p, g) = (self, &self.geometry);
        let mut out = Vec::with_capacity(g.rows() * g.cols());
        for n in 0..g.batch {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    for ky in 0..g.kernel_h {
                        for kx in 0..g.kernel_w {
                            for c in 0..g.in_c {
                                let y = (oy * g.stride_h + ky * g.dilation_h) as isize
                                    - g.pad_top as isize;
                                let x = (ox * g.stride_w + kx) as isize - g.pad_left as isize;
                                let inside = (0..g.in_h as isize).contains(&y)
                                    && (0..g.in_w as isize).contains(&x);
                                out.push(if inside {
                                    p.x[((n * g.in_h + y as usize) * g.in_w + x as usize) * g.in_c
                                        + c]
                                } else {
                                    0.0
                                });
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// `dst.copy_from_slice(src)`, without a `memcpy` call for the short runs of a first
/// convolution layer (3x3 over 3 channels: 9 values): two overlapping fixed-size
/// copies, each a single vector load and store.
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    debug_assert_eq!(n, src.len());
    if (8..=16).contains(&n) {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if (4..8).contains(&n) {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else {
        dst.copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slice_of_every_row_matches_the_definition() {
        // Valid and same padding, stride 1 and 2, one and several channels; under
        // Miri, which interprets every copy, the padded strided geometry alone.
        let geometries = [
            (7, 5, 2, 3, 2, 1),
            (6, 6, 3, 3, 1, 0),
            (6, 7, 3, 3, 1, 1),
            (5, 5, 1, 2, 1, 0),
            (4, 4, 5, 3, 1, 1),
        ];
        let geometries = if cfg!(miri) {
            &geometries[..1]
        } else {
            &geometries[..]
        };
        for &(ih, iw, c, k, s, pad) in geometries {
            let g = PatchGeometry::square_kernel(2, (ih, iw, c), k, s, pad);
            let x: Vec<f32> = (0..g.input_len()).map(|i| i as f32 + 1.0).collect();
            let p = Patches { x: &x, geometry: g };
            let want = p.explicit();
            let cols = g.cols();
            // Rows gathered one at a time, and in runs that cross images.
            let stride = cols + 2;
            for count in [1, g.out_w + 1, g.rows()] {
                let mut got = vec![f32::NAN; count * stride];
                for first in (0..g.rows()).step_by(count) {
                    let count = count.min(g.rows() - first);
                    for lo in 0..cols {
                        for hi in lo + 1..=cols {
                            got.fill(f32::NAN);
                            p.gather(first, count, lo..hi, &mut got, stride, Isa::detect());
                            for r in 0..count {
                                let row = &got[r * stride..(r + 1) * stride];
                                let at = (first + r) * cols;
                                assert_eq!(
                                    &row[..hi - lo],
                                    &want[at + lo..at + hi],
                                    "{g:?}: row {}, columns {lo}..{hi}",
                                    first + r
                                );
                                assert!(row[hi - lo..].iter().all(|v| v.is_nan()));
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn dilated_sequences_match_the_definition() {
        // A 1-D convolution's geometry: time as the height, a width of 1, taps
        // `dilation_h` steps apart; valid (read in place), causal and same padding.
        for &(time, c, k, s, d, pad) in &[
            (12, 3, 3, 1, 2, 0),
            (12, 2, 3, 1, 3, 6),
            (11, 4, 4, 2, 2, 3),
            (9, 1, 2, 1, 1, 1),
        ] {
            let g = PatchGeometry {
                batch: 2,
                in_h: time,
                in_w: 1,
                in_c: c,
                out_h: (time + pad - (d * (k - 1) + 1)) / s + 1,
                out_w: 1,
                kernel_h: k,
                kernel_w: 1,
                stride_h: s,
                stride_w: 1,
                pad_top: pad,
                pad_left: 0,
                dilation_h: d,
            };
            let x: Vec<f32> = (0..g.input_len()).map(|i| i as f32 + 1.0).collect();
            let p = Patches { x: &x, geometry: g };
            let want = p.explicit();
            let cols = g.cols();
            let mut got = vec![f32::NAN; g.rows() * cols];
            for lo in 0..cols {
                p.gather(0, g.rows(), lo..cols, &mut got, cols, Isa::detect());
                for r in 0..g.rows() {
                    let at = r * cols;
                    assert_eq!(
                        &got[at..at + cols - lo],
                        &want[at + lo..at + cols],
                        "{g:?}: row {r}"
                    );
                }
            }
            let in_place = p.in_place(0..cols, cols);
            assert_eq!(in_place.is_some(), pad == 0, "{g:?}");
            if let Some(ip) = in_place {
                assert_eq!(ip.jump, (d - 1) * c, "{g:?}");
            }
        }
    }
}
