//! The cache-blocked loops around the micro-kernel (Goto's algorithm, as in BLIS).
//!
//! For one task (a block of `c` and a range of `k`): `b` is cut into `kc x nc` panels
//! and `a` into `mc x kc` blocks; inside, the macro-kernel walks `NR`-wide strips of the
//! panel (outer) and `MR`-tall strips of the block (inner), so that a strip of `b`
//! stays in L1 while the strips of `a` stream from L2. When the whole panel of `b`
//! fits in L1 (a short `k`, a narrow `c`), the order flips: `c` is then written row
//! strip by row strip and every strip of `a` is read once.
//!
//! An operand is packed (copied into strips, see [`super::pack`]) unless it can be
//! read in place: the micro-kernel reads `a` at any strides, and `b` with unit column
//! stride, directly from the caller's storage when a copy would not pay for itself.
//! Ragged edges: a strip of fewer than `MR` rows runs a kernel compiled for that many
//! rows; a strip of fewer than `NR` columns of an in-place `b` is packed (the kernel
//! always reads `NR` columns) and its tiles go through a stack buffer.
//!
//! The epilogue (bias, activation) goes with the store of each tile's last `k` block:
//! into the micro-kernel when it can be done in registers, otherwise over the tile
//! just stored, while it is in L1.

use std::ops::Range;

use super::scratch::WorkerScratch;
use super::{Epilogue, Lhs, MatRef, pack};
use crate::ops::activation::ActivationKind;

/// Rows of the AVX2 and portable register tiles.
pub(super) const MR: usize = 6;
/// Rows of the AVX-512 register tile, two strips of `b` (32 columns) wide: 16 of the
/// 32 `zmm` registers hold accumulators, twice the FMA latency times the two FMA
/// pipes. Measured on a Zen 5 core against 12 and 14 rows (24 and 28 accumulators):
/// as fast on a 1024^3 product on one thread (240 GFLOP/s, 93 % of the FMA peak),
/// faster on two (420 against 400 and 380 GFLOP/s), and the Winograd products'
/// 32 and 64 rows come out in whole strips.
pub(super) const MR_AVX512: usize = 8;
/// The most rows of any register tile.
pub(super) const MR_MAX: usize = if MR_AVX512 > MR { MR_AVX512 } else { MR };
/// Columns of a strip of `b`: two AVX vectors, one AVX-512 vector. The AVX-512
/// kernel takes two strips at a time.
pub(super) const NR: usize = 16;
/// The most steps of `k` per panel: a `KC x NR` strip of `b` (24 KiB) stays in a
/// 32 KiB L1 next to the strip of `a` streaming through. Longer panels mean fewer
/// passes over `c`. The AVX-512 kernel's two strips (48 KiB) fill a Zen 5's L1, yet
/// measured no slower than 256 or 192 steps (the next strips stream from L2).
pub(super) const KC: usize = 384;
/// The most rows of `a` per packed block: `MC x KC` (216 KiB) sits in L2 (288 rows
/// measured the same on Zen 5's 1 MiB L2).
pub(super) const MC: usize = 144;
/// The most columns of `b` per packed panel: `KC x NC` (1.5 MiB) sits in L3; wide
/// enough that a worker packs the `b` of every product of kiln's models whole, once.
pub(super) const NC: usize = 1024;

// Blocks of `a` are whole strips for every tile height (the packing buffer's size).
const _: () = assert!(MC.is_multiple_of(MR) && MC.is_multiple_of(MR_AVX512));

/// One micro-kernel call for `R` rows (at most the kernel's tile rows; a const
/// parameter of the kernel) and `N` columns, `NR` or (for the AVX-512 kernel) `2 * NR`:
/// `c[0..R][0..N] = act(alpha * sum_p a(0..R, p) b(p, :) + beta * c + bias)`.
///
/// Contract for the pointers: for every `p < k` and `i < R`, `a + i * a_rs + p * a_cs`
/// is readable, and so are the `NR` values at `b + p * b_rs` (and, for `2 * NR`
/// columns, the `NR` at `b + b_next + p * b_rs`, columns `NR..2 * NR`); the `R x N`
/// block at `c` with rows `c_rs` apart is writable, not aliased by any live
/// reference, and readable when `beta != 0`; unless `bias` is null, the `N` values at
/// `bias` are readable. With `beta == 0`, `c` is not read.
pub(super) struct Tile {
    pub(super) k: usize,
    pub(super) a: *const f32,
    pub(super) a_rs: usize,
    pub(super) a_cs: usize,
    /// With `a_jump != 0`, `a` is read in runs of `a_run` steps, and its pointers
    /// jump by a further `a_jump` after each run (a patch read in place from its
    /// image, see `Patches::in_place`); the contract's address of step `p` becomes
    /// `a + i * a_rs + p * a_cs + (p / a_run) * a_jump`.
    pub(super) a_run: usize,
    pub(super) a_jump: usize,
    pub(super) b: *const f32,
    pub(super) b_rs: usize,
    /// From the first strip of `b` to the second, for a tile of two strips.
    pub(super) b_next: usize,
    pub(super) c: *mut f32,
    pub(super) c_rs: usize,
    pub(super) alpha: f32,
    pub(super) beta: f32,
    /// Lines to prefetch while the tile runs (the next strip of `a` when `a` is read
    /// in place and may still be in memory): step `p < pf_n` prefetches
    /// `pf + p * pf_step`. Any address is allowed; nothing is read.
    pub(super) pf: *const f32,
    pub(super) pf_step: usize,
    pub(super) pf_n: usize,
    /// `N` values added to every row before the activation; null adds nothing.
    pub(super) bias: *const f32,
    /// The activation applied before the store.
    pub(super) act: TileAct,
}

impl Tile {
    /// Whether the store adds a bias or applies an activation.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn has_epilogue(&self) -> bool {
        !self.bias.is_null() || self.act != TileAct::Linear
    }
}

/// The activations a micro-kernel applies in registers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum TileAct {
    Linear,
    /// `if x < 0 { 0 } else { x }`: NaN propagates.
    Relu,
    /// `if x < 0 { slope * x } else { x }`, with the slope.
    LeakyRelu(f32),
}

/// The micro-kernel the CPU can run, chosen once per backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX-512F (with AVX2 and FMA, which every CPU with AVX-512 has, for the code
    /// that has no AVX-512 version).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    Portable,
}

impl Isa {
    /// The fastest kernel this CPU supports, or a slower one where `KILN_CPU_ISA`
    /// asks for it (`avx2` or `portable`; for comparisons).
    pub(crate) fn detect() -> Self {
        let cap = std::env::var("KILN_CPU_ISA").ok();
        let allowed = |name: &str| match cap.as_deref() {
            Some("portable") => false,
            Some("avx2") => name == "avx2",
            _ => true,
        };
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            if avx2 && is_x86_feature_detected!("avx512f") && allowed("avx512") {
                return Self::Avx512;
            }
            if avx2 && allowed("avx2") {
                return Self::Avx2Fma;
            }
        }
        let _ = allowed;
        Self::Portable
    }

    /// Whether the CPU runs AVX2 and FMA code (true of every CPU with AVX-512).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn has_avx2(self) -> bool {
        matches!(self, Self::Avx512 | Self::Avx2Fma)
    }

    /// Rows of the micro-kernel's register tile.
    pub(super) fn mr(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => MR_AVX512,
            _ => MR,
        }
    }
}

/// Whether the operands are read in place or packed; one choice per product.
#[derive(Clone, Copy, Debug)]
pub(super) struct Packing {
    /// Read `a` in place (any strides).
    pub(super) direct_a: bool,
    /// Read `b` in place (needs `b.col_stride == 1`).
    pub(super) direct_b: bool,
}

/// One task: `c[rows][cols] = act(alpha * a[rows][ks] * b[ks][cols] +
/// beta * c[rows][cols] + bias[cols])`, where `c` points at element
/// `(rows.start, cols.start)` of the destination, rows `c_rs` apart, and the bias is
/// indexed by the destination's columns.
pub(super) struct Job<'a> {
    /// Which call of `sgemm` this task belongs to (tells a worker whether the `b` it
    /// packed for an earlier task is still the right one).
    pub(super) product: u64,
    pub(super) isa: Isa,
    pub(super) packing: Packing,
    pub(super) alpha: f32,
    pub(super) beta: f32,
    pub(super) a: Lhs<'a>,
    pub(super) b: MatRef<'a>,
    pub(super) rows: Range<usize>,
    pub(super) cols: Range<usize>,
    pub(super) ks: Range<usize>,
    pub(super) c: *mut f32,
    pub(super) c_rs: usize,
    /// Applied with the last `k` block; its bias (if any) holds a value for every
    /// column of `cols`.
    pub(super) epilogue: Epilogue<'a>,
}

/// The strips of one operand as the macro-kernel walks them: strip `s` starts at
/// `ptr + s * step` with strides `(rs, cs)`; the last `len % width` rows or columns
/// form a ragged strip. For `b` read in place the ragged strip is packed elsewhere, at
/// `edge` with row stride `NR`.
#[derive(Clone, Copy)]
struct Strips {
    ptr: *const f32,
    rs: usize,
    cs: usize,
    step: usize,
    len: usize,
    edge: *const f32,
    edge_rs: usize,
    /// How to prefetch a strip (see [`Tile::pf`]); `pf_n == 0` for none.
    pf_step: usize,
    pf_n: usize,
    /// Runs of `a` (see [`Tile::a_jump`]); `jump == 0` for none.
    run: usize,
    jump: usize,
}

/// Runs `job`, using `ws` for packing.
///
/// # Safety
/// `job.c` must satisfy the destination half of [`Tile`]'s contract for the whole
/// `rows x cols` block, the views must lie inside their slices (checked by `sgemm`),
/// and `job.packing.direct_b` requires `job.b.col_stride == 1`.
pub(super) unsafe fn run(job: &Job<'_>, ws: &mut WorkerScratch) {
    let (m, n, k) = (job.rows.len(), job.cols.len(), job.ks.len());
    let mr = job.isa.mr();
    let kc_max = kc_for(job.isa, m, n, k);
    let whole_b = !job.packing.direct_b && pack_whole_b(job, ws, kc_max);
    let mut jc = 0;
    while jc < n {
        let nc = NC.min(n - jc);
        let mut pc = 0;
        while pc < k {
            let kc = kc_max.min(k - pc);
            let p0 = job.ks.start + pc;
            let j0 = job.cols.start + jc;
            let b = if whole_b {
                // Panel `(pc, jc)` of the layout `pack_whole_b` wrote.
                let at = pc * n.next_multiple_of(NR) + jc * kc;
                let ptr = ws.b.as_mut_slice()[at..].as_ptr();
                Strips {
                    ptr,
                    rs: NR,
                    cs: 1,
                    step: NR * kc,
                    len: nc,
                    edge: ptr.wrapping_add(nc / NR * NR * kc),
                    edge_rs: NR,
                    pf_step: 0,
                    pf_n: 0,
                    run: 0,
                    jump: 0,
                }
            } else {
                b_strips(job, ws, p0, kc, j0, nc)
            };
            let beta = if pc == 0 { job.beta } else { 1.0 };
            let epilogue = if pc + kc == k {
                job.epilogue.shifted(j0)
            } else {
                Epilogue::NONE
            };
            let (isa, rs, alpha) = (job.isa, job.c_rs, job.alpha);
            if let Lhs::Patches(patches) = &job.a
                && let Some(in_place) = patches.in_place(p0..p0 + kc, kc_max)
            {
                // Patches read straight from the images, an output row at a time (a
                // strip of `a` needs one row stride).
                for (row, len, at) in patches.row_pieces(job.rows.start, m) {
                    let a = Strips {
                        run: in_place.run,
                        jump: in_place.jump,
                        ..gathered(patches.x[at..].as_ptr(), in_place.row_stride, 1, len, mr)
                    };
                    // SAFETY: rows `row..row + len` lie in the job's rows, so the block
                    // lies inside the job's block of `c`; every patch of these rows is
                    // inside the images (`in_place` checked it), and the strips of `b`
                    // were built for `kc x nc`.
                    unsafe {
                        let c = job.c.add((row - job.rows.start) * job.c_rs + jc);
                        macro_kernel(isa, &a, &b, kc, c, rs, alpha, beta, &epilogue);
                    }
                }
            } else {
                let mut ic = 0;
                while ic < m {
                    let mc = MC.min(m - ic);
                    let a = a_strips(job, ws, job.rows.start + ic, mc, p0, kc);
                    // SAFETY: `ic < m` and `jc < n` keep the block inside the job's block
                    // of `c`; the strips were built for exactly `mc x kc` and `kc x nc`.
                    unsafe {
                        let c = job.c.add(ic * job.c_rs + jc);
                        macro_kernel(isa, &a, &b, kc, c, rs, alpha, beta, &epilogue);
                    }
                    ic += mc;
                }
            }
            pc += kc;
        }
        jc += nc;
    }
}

/// The `k` block length for an `m x n x k` task: blocks of even length (300 runs as
/// 150 + 150, not 256 + 44), at most `KC`. When `a` and `b` are both so thin that
/// their whole blocks fit in L1 at a useful length, blocks are cut to that length.
fn kc_for(isa: Isa, m: usize, n: usize, k: usize) -> usize {
    let fits_l1 = L1_BYTES / ((m.next_multiple_of(isa.mr()) + n.next_multiple_of(NR)) * 4);
    let cap = if fits_l1 >= KC_THIN {
        fits_l1.min(KC)
    } else {
        KC
    };
    k.div_ceil(k.div_ceil(cap).max(1))
}

/// The part of L1 a thin product's `a` and `b` blocks may fill.
const L1_BYTES: usize = 24 * 1024;
/// Blocks shorter than this cost too many passes over `c`.
const KC_THIN: usize = 96;

/// Packs all of the job's `b` (every `k` block, every column) into `ws.b` if it fits,
/// unless this worker already did so for an earlier task of the same product: the
/// row blocks of one product share `b`, so each worker packs it once, not once per
/// task. Returns whether `ws.b` now holds it.
///
/// Layout: `k` block `pc` starts at `pc * n_pad`; within it, the strip of columns
/// `s * NR..` starts `s * NR * kc` further on.
fn pack_whole_b(job: &Job<'_>, ws: &mut WorkerScratch, kc_max: usize) -> bool {
    let (n, k) = (job.cols.len(), job.ks.len());
    let n_pad = n.next_multiple_of(NR);
    let key = (job.product, kc_max, job.ks.clone(), job.cols.clone());
    if ws.whole_b.as_ref() == Some(&key) {
        return true;
    }
    ws.whole_b = None;
    let buf = ws.b.as_mut_slice();
    if k * n_pad > buf.len() {
        return false;
    }
    let mut pc = 0;
    while pc < k {
        let kc = kc_max.min(k - pc);
        let block = &mut buf[pc * n_pad..pc * n_pad + kc * n_pad];
        for (s, strip) in block.chunks_exact_mut(NR * kc).enumerate() {
            let j = s * NR;
            pack::b_strip(
                strip,
                &job.b,
                job.ks.start + pc,
                job.cols.start + j,
                NR.min(n - j),
                job.isa,
            );
        }
        pc += kc;
    }
    ws.whole_b = Some(key);
    true
}

/// Builds the strips of the `mc x kc` block of `a` at `(i0, p0)`, packing or
/// gathering into `ws` unless `a` is read in place.
fn a_strips(
    job: &Job<'_>,
    ws: &mut WorkerScratch,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
) -> Strips {
    let mr = job.isa.mr();
    let a = match &job.a {
        Lhs::Mat(a) => a,
        Lhs::Patches(patches) => {
            // Row-major, `kc` apart: each row is a gathered slice of one patch.
            let buf = &mut ws.a.as_mut_slice()[..mc * kc];
            patches.gather(i0, mc, p0..p0 + kc, buf, kc, job.isa);
            return gathered(buf.as_ptr(), kc, 1, mc, mr);
        }
        Lhs::PatchesT(patches) => {
            // Step `p` of the transpose is a slice of patch `p0 + p`: `mc` contiguous
            // values, which the micro-kernel reads as one column of its rows.
            let buf = &mut ws.a.as_mut_slice()[..mc * kc];
            patches.gather(p0, kc, i0..i0 + mc, buf, mc, job.isa);
            return gathered(buf.as_ptr(), 1, mc, mc, mr);
        }
    };
    // A strip of `a` read in place, as lines of 16 floats to prefetch: row-major, the
    // span from its first to its last value (exact when `kc` is all of `k`);
    // transposed, one line per step.
    let (pf_step, pf_n) = match (a.col_stride, a.row_stride) {
        (1, rs) => (16, ((mr - 1) * rs + kc).div_ceil(16)),
        (cs, 1) => (cs, kc),
        _ => (0, 0),
    };
    if job.packing.direct_a {
        // `wrapping_add`: the offset is in bounds since the block is not empty.
        let ptr = a
            .data
            .as_ptr()
            .wrapping_add(i0 * a.row_stride + p0 * a.col_stride);
        Strips {
            pf_step,
            pf_n,
            ..gathered(ptr, a.row_stride, a.col_stride, mc, mr)
        }
    } else {
        let buf = &mut ws.a.as_mut_slice()[..mc.div_ceil(mr) * mr * kc];
        for (s, strip) in buf.chunks_exact_mut(mr * kc).enumerate() {
            pack::a_strip(strip, a, i0 + s * mr, mr.min(mc - s * mr), p0, mr);
        }
        // Strips of `mr` rows, each `mr * kc` long.
        Strips {
            step: mr * kc,
            edge: buf.as_ptr().wrapping_add(mc / mr * mr * kc),
            ..gathered(buf.as_ptr(), 1, mr, mc, mr)
        }
    }
}

/// The strips of `mc` rows of `a` at `ptr` with strides `(rs, cs)`, strip `s` starting
/// `s * mr` rows on, without prefetching: packed or gathered blocks are in L1 or L2
/// already. The ragged strip of `a` is read like the others, by a kernel for fewer
/// rows.
fn gathered(ptr: *const f32, rs: usize, cs: usize, mc: usize, mr: usize) -> Strips {
    let step = mr * rs;
    Strips {
        ptr,
        rs,
        cs,
        step,
        len: mc,
        edge: ptr.wrapping_add(mc / mr * step),
        edge_rs: rs,
        pf_step: 0,
        pf_n: 0,
        run: 0,
        jump: 0,
    }
}

/// Builds the strips of the `kc x nc` panel of `b` at `(p0, j0)`, packing into `ws`
/// unless `b` is read in place (then only a ragged strip is packed).
fn b_strips(
    job: &Job<'_>,
    ws: &mut WorkerScratch,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
) -> Strips {
    let b = &job.b;
    let full = nc / NR;
    if job.packing.direct_b {
        let edge = &mut ws.b_edge.as_mut_slice()[..kc * NR];
        if !nc.is_multiple_of(NR) {
            pack::b_strip(edge, b, p0, j0 + full * NR, nc % NR, job.isa);
        }
        Strips {
            ptr: b.data.as_ptr().wrapping_add(p0 * b.row_stride + j0),
            rs: b.row_stride,
            cs: 1,
            step: NR,
            len: nc,
            edge: edge.as_ptr(),
            edge_rs: NR,
            pf_step: 0,
            pf_n: 0,
            run: 0,
            jump: 0,
        }
    } else {
        ws.whole_b = None;
        let buf = &mut ws.b.as_mut_slice()[..nc.div_ceil(NR) * NR * kc];
        for (s, strip) in buf.chunks_exact_mut(NR * kc).enumerate() {
            pack::b_strip(strip, b, p0, j0 + s * NR, NR.min(nc - s * NR), job.isa);
        }
        Strips {
            ptr: buf.as_ptr(),
            rs: NR,
            cs: 1,
            step: NR * kc,
            len: nc,
            edge: buf.as_ptr().wrapping_add(full * NR * kc),
            edge_rs: NR,
            pf_step: 0,
            pf_n: 0,
            run: 0,
            jump: 0,
        }
    }
}

/// `c = a * b + beta * c` for a `b` packed whole as one `k` block (strip `s` of `NR`
/// columns at `s * NR * k`), `a` read in place, on the calling thread.
///
/// # Safety
/// `a` must lie inside its slice, `b` must hold `k * n.next_multiple_of(NR)` values,
/// and `c` must be writable (and readable unless `beta == 0`) for `m x n` values with
/// rows `c_rs` apart and not aliased.
pub(super) unsafe fn run_prepacked(
    isa: Isa,
    a: &MatRef<'_>,
    b: &[f32],
    n: usize,
    beta: f32,
    c: *mut f32,
    c_rs: usize,
) {
    let k = a.cols;
    let b = Strips {
        ptr: b.as_ptr(),
        rs: NR,
        cs: 1,
        step: NR * k,
        len: n,
        edge: b.as_ptr().wrapping_add(n / NR * NR * k),
        edge_rs: NR,
        pf_step: 0,
        pf_n: 0,
        run: 0,
        jump: 0,
    };
    let a = gathered(
        a.data.as_ptr(),
        a.row_stride,
        a.col_stride,
        a.rows,
        isa.mr(),
    );
    // SAFETY: the caller's contract covers the strips and the block of `c`.
    unsafe { macro_kernel(isa, &a, &b, k, c, c_rs, 1.0, beta, &Epilogue::NONE) };
}

/// Dispatches to the macro-kernel compiled for `isa`.
///
/// # Safety
/// As [`macro_kernel_with`].
#[allow(clippy::too_many_arguments)] // a hot path: a struct would only be unpacked again
unsafe fn macro_kernel(
    isa: Isa,
    a: &Strips,
    b: &Strips,
    kc: usize,
    c: *mut f32,
    c_rs: usize,
    alpha: f32,
    beta: f32,
    epilogue: &Epilogue<'_>,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` is only chosen after detecting AVX-512F, AVX2 and FMA;
        // the rest is the caller's contract.
        Isa::Avx512 => unsafe { macro_kernel_avx512(a, b, kc, c, c_rs, alpha, beta, epilogue) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2Fma` is only chosen after detecting AVX2 and FMA; the rest
        // is the caller's contract.
        Isa::Avx2Fma => unsafe { macro_kernel_avx2(a, b, kc, c, c_rs, alpha, beta, epilogue) },
        Isa::Portable => {
            use super::kernel_portable::tile as portable;
            // SAFETY: `macro_kernel_with` only calls this with `rows <= MR`, one strip
            // of `b`, and a tile that meets `Tile`'s contract for `rows` rows.
            let tile = |t: &Tile, rows: usize, _wide: bool| unsafe { by_rows!(portable, rows, t) };
            // SAFETY: the caller's contract.
            unsafe {
                macro_kernel_with::<MR, false>(tile, a, b, kc, c, c_rs, alpha, beta, epilogue);
            }
        }
    }
}

/// Calls `$kernel::<R>($t)` (or `$kernel::<R, $flag, ...>($t)`) with `R` the run-time
/// `$rows` (1 to `MR`).
macro_rules! by_rows {
    ($kernel:ident, $rows:expr, $t:expr $(, $flag:literal)*) => {
        match $rows {
            6 => $kernel::<6 $(, $flag)*>($t),
            5 => $kernel::<5 $(, $flag)*>($t),
            4 => $kernel::<4 $(, $flag)*>($t),
            3 => $kernel::<3 $(, $flag)*>($t),
            2 => $kernel::<2 $(, $flag)*>($t),
            _ => $kernel::<1 $(, $flag)*>($t),
        }
    };
}
use by_rows;

// `by_rows!` spells out every row count up to `MR`.
const _: () = assert!(MR == 6);

/// [`by_rows!`] up to `MR_AVX512` rows.
#[cfg(target_arch = "x86_64")]
macro_rules! by_rows_avx512 {
    ($kernel:ident, $rows:expr, $t:expr $(, $flag:tt)*) => {
        match $rows {
            8 => $kernel::<8 $(, $flag)*>($t),
            7 => $kernel::<7 $(, $flag)*>($t),
            6 => $kernel::<6 $(, $flag)*>($t),
            5 => $kernel::<5 $(, $flag)*>($t),
            4 => $kernel::<4 $(, $flag)*>($t),
            3 => $kernel::<3 $(, $flag)*>($t),
            2 => $kernel::<2 $(, $flag)*>($t),
            _ => $kernel::<1 $(, $flag)*>($t),
        }
    };
}

// `by_rows_avx512!` spells out every row count up to `MR_AVX512`.
const _: () = assert!(MR_AVX512 == 8);

/// The macro-kernel with the AVX2 micro-kernels inlined into it.
///
/// # Safety
/// The CPU must support AVX2 and FMA; otherwise as [`macro_kernel_with`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn macro_kernel_avx2(
    a: &Strips,
    b: &Strips,
    kc: usize,
    c: *mut f32,
    c_rs: usize,
    alpha: f32,
    beta: f32,
    epilogue: &Epilogue<'_>,
) {
    use super::kernel_avx2::tile as avx2;
    // SAFETY: this function runs only where AVX2 and FMA are present; `rows <= MR`,
    // one strip of `b`, and the tile's contract are `macro_kernel_with`'s to keep.
    let tile = |t: &Tile, rows: usize, _wide: bool| unsafe {
        // The plain product, most of them, runs a kernel without the epilogue's code.
        match (t.has_epilogue(), t.a_jump != 0) {
            (true, false) => by_rows!(avx2, rows, t, true, false),
            (false, false) => by_rows!(avx2, rows, t, false, false),
            (true, true) => by_rows!(avx2, rows, t, true, true),
            (false, true) => by_rows!(avx2, rows, t, false, true),
        }
    };
    // SAFETY: the caller's contract.
    unsafe { macro_kernel_with::<MR, false>(tile, a, b, kc, c, c_rs, alpha, beta, epilogue) }
}

/// The macro-kernel over the AVX-512 micro-kernels, two strips of `b` a tile where
/// there are two.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; otherwise as [`macro_kernel_with`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn macro_kernel_avx512(
    a: &Strips,
    b: &Strips,
    kc: usize,
    c: *mut f32,
    c_rs: usize,
    alpha: f32,
    beta: f32,
    epilogue: &Epilogue<'_>,
) {
    use super::kernel_avx512::tile as avx512;
    // SAFETY: this function runs only where AVX-512F is present; `rows <= MR_AVX512`
    // and the tile's contract for one strip of `b` (two when `wide`) are
    // `macro_kernel_with`'s to keep.
    let tile = |t: &Tile, rows: usize, wide: bool| unsafe {
        match (wide, t.has_epilogue(), t.a_jump != 0) {
            (true, true, false) => by_rows_avx512!(avx512, rows, t, 2, true, false),
            (true, false, false) => by_rows_avx512!(avx512, rows, t, 2, false, false),
            (true, true, true) => by_rows_avx512!(avx512, rows, t, 2, true, true),
            (true, false, true) => by_rows_avx512!(avx512, rows, t, 2, false, true),
            (false, true, false) => by_rows_avx512!(avx512, rows, t, 1, true, false),
            (false, false, false) => by_rows_avx512!(avx512, rows, t, 1, false, false),
            (false, true, true) => by_rows_avx512!(avx512, rows, t, 1, true, true),
            (false, false, true) => by_rows_avx512!(avx512, rows, t, 1, false, true),
        }
    };
    // SAFETY: the caller's contract.
    unsafe {
        macro_kernel_with::<MR_AVX512, true>(tile, a, b, kc, c, c_rs, alpha, beta, epilogue);
    }
}

/// `c = act(alpha * a * b + beta * c + bias)` over all strips of `a` (`a.len` rows,
/// strips of `TILE_M`) and `b` (`b.len` columns), `kc` steps deep, with the bias and
/// the activation from `epilogue` (whose bias starts at the block's first column).
/// With `WIDE`, two full strips of `b` side by side make one tile.
///
/// # Safety
/// `tile(t, rows, wide)` must be sound for any `t` that meets [`Tile`]'s contract for
/// `rows <= TILE_M` rows and `NR` columns (`2 * NR` when `wide`, which only `WIDE`
/// asks for); the strips must be readable for `kc` steps; `c` must be writable for
/// the `a.len x b.len` block with rows `c_rs` apart (and readable when `beta != 0`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn macro_kernel_with<const TILE_M: usize, const WIDE: bool>(
    tile: impl Fn(&Tile, usize, bool),
    a: &Strips,
    b: &Strips,
    kc: usize,
    c: *mut f32,
    c_rs: usize,
    alpha: f32,
    beta: f32,
    epilogue: &Epilogue<'_>,
) {
    const { assert!(TILE_M <= MR_MAX) };
    // The bias and the simple activations go into the kernel's registers; the others
    // run over each tile once it is stored, as do all of them on a ragged tile.
    let act = match epilogue.activation {
        ActivationKind::Relu => Some(TileAct::Relu),
        ActivationKind::LeakyRelu => Some(TileAct::LeakyRelu(epilogue.negative_slope)),
        ActivationKind::Sigmoid | ActivationKind::Tanh => None,
        ActivationKind::Linear | ActivationKind::Gelu | ActivationKind::Softmax => {
            Some(TileAct::Linear)
        }
    };
    let (tile_bias, tile_act) = match act {
        Some(act) => (epilogue.bias, act),
        None => (None, TileAct::Linear),
    };
    let after_tile = act.is_none();
    let ragged_epilogue = !epilogue.is_none();
    let a_count = a.len.div_ceil(TILE_M);
    let b_count = b.len.div_ceil(NR);
    let b_full = b.len / NR;
    // Column units: pairs of full strips first (with `WIDE`), then single strips.
    let pairs = if WIDE { b_full / 2 } else { 0 };
    let units = b_count - pairs;
    let run_tile = |it: usize, unit: usize| {
        let (jt, wide) = if unit < pairs {
            (2 * unit, true)
        } else {
            (unit + pairs, false)
        };
        let rows = TILE_M.min(a.len - it * TILE_M);
        let (bp, b_rs) = if jt < b_full {
            (b.ptr.wrapping_add(jt * b.step), b.rs)
        } else {
            (b.edge, b.edge_rs)
        };
        let cols = if wide {
            2 * NR
        } else {
            NR.min(b.len - jt * NR)
        };
        let dst = c.wrapping_add(it * TILE_M * c_rs + jt * NR);
        // The first tile of a strip of `a` fetches the next strip, so that an `a` read
        // in place streams from memory while the FMAs run.
        let pf_n = if unit == 0 { a.pf_n } else { 0 };
        let mut t = Tile {
            k: kc,
            a: a.ptr.wrapping_add(it * a.step),
            a_rs: a.rs,
            a_cs: a.cs,
            a_run: a.run,
            a_jump: a.jump,
            b: bp,
            b_rs,
            b_next: b.step,
            c: dst,
            c_rs,
            alpha,
            beta,
            pf: a.ptr.wrapping_add((it + 1) * a.step),
            pf_step: a.pf_step,
            pf_n,
            bias: std::ptr::null(),
            act: TileAct::Linear,
        };
        if wide || cols == NR {
            if let Some(bias) = tile_bias {
                t.bias = bias[jt * NR..jt * NR + cols].as_ptr();
            }
            t.act = tile_act;
            tile(&t, rows, wide);
            if after_tile {
                for i in 0..rows {
                    // SAFETY: the kernel just wrote row `i < rows` of this tile, inside
                    // the block of `c` handed over; no other reference to it is live.
                    let out = unsafe { std::slice::from_raw_parts_mut(dst.add(i * c_rs), cols) };
                    epilogue.apply(out, jt * NR);
                }
            }
            return;
        }
        // Fewer columns than a strip: compute into a stack tile, then copy. Left
        // uninitialised: the kernel writes all `rows x NR` values it is asked for and
        // reads none with `beta == 0`.
        let mut buf = std::mem::MaybeUninit::<[f32; MR_MAX * NR]>::uninit();
        t.c = buf.as_mut_ptr().cast::<f32>();
        t.c_rs = NR;
        t.beta = 0.0;
        tile(&t, rows, false);
        for i in 0..rows {
            // SAFETY: the kernel wrote row `i < rows` of `buf`; row `i` and the first
            // `cols` columns of this tile lie inside the block of `c` handed over.
            let (src, out) = unsafe {
                (
                    std::slice::from_raw_parts(buf.as_ptr().cast::<f32>().add(i * NR), cols),
                    std::slice::from_raw_parts_mut(dst.add(i * c_rs), cols),
                )
            };
            if beta == 0.0 {
                out.copy_from_slice(src);
            } else {
                for (o, s) in out.iter_mut().zip(src) {
                    *o = s + beta * *o;
                }
            }
            if ragged_epilogue {
                epilogue.apply(out, jt * NR);
            }
        }
    };
    // When the whole panel of `b` fits in L1, walk `c` row strip by row strip, so that
    // each strip of `a` is read once and `c` is written a whole row at a time.
    // (One loop nest for both orders keeps `run_tile` inlined.)
    let rows_outer = b_count * kc * NR <= B_IN_L1;
    let (outer, inner) = if rows_outer {
        (a_count, units)
    } else {
        (units, a_count)
    };
    for o in 0..outer {
        for i in 0..inner {
            if rows_outer {
                run_tile(o, i);
            } else {
                run_tile(i, o);
            }
        }
    }
}

/// The most floats of `b` a macro-kernel treats as L1-resident.
const B_IN_L1: usize = 4096;
