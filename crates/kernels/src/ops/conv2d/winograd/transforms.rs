//! The transforms of Winograd's algorithm: the kernel's (`U = G g Gᵀ`, once per call,
//! split between the pool's threads), and four over a block of tiles on one thread:
//! the input's (`V = Bᵀ d B`), the products' back to output pixels (`Y = Aᵀ M A`),
//! the output gradient's (`Z = A dY Aᵀ`) and the input gradient's (`B dV Bᵀ`). Each of
//! the four runs the portable loop, compiled with AVX2 and FMA and given an AVX2
//! transform of whole tiles where the CPU has them.

use super::POSITIONS;
#[cfg(target_arch = "x86_64")]
use super::avx2;
use super::plan::Tiles;
use super::portable::{
    scatter_input_gradient_with, transform_input_with, transform_output_gradient_with,
    transform_output_with,
};
use crate::Cpu;
use crate::cpu::SendPtr;
use crate::cpu::gemm::{Epilogue, Isa, PACKED_STRIP, packed_index, packed_len};
use crate::ops::conv2d::Conv2dParams;
use crate::ops::us;

/// `U[ξ] = G g Gᵀ` for every channel pair, written packed for the products:
/// `G = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]`. The input channels are split
/// between the pool's threads (each writes its own rows of the packed operands).
pub(super) fn transform_kernel(
    cpu: &Cpu,
    p: &Conv2dParams,
    tap: impl Fn(usize, usize, usize, usize) -> f32 + Sync,
    u: &mut [f32],
) {
    let (c_in, c_out) = (us(p.in_c), us(p.out_c));
    let packed = packed_len(c_in, c_out);
    assert!(
        u.len() >= POSITIONS * packed,
        "winograd: short kernel buffer"
    );
    let u = SendPtr(u.as_mut_ptr());
    let per_task = c_in.div_ceil(cpu.threads());
    let task = |t: usize, _worker: usize| {
        for c in t * per_task..c_in.min((t + 1) * per_task) {
            for k in 0..c_out {
                // `G g`: four rows of three, column by column.
                let column = |kx: usize| {
                    let (g0, g1, g2) = (tap(0, kx, c, k), tap(1, kx, c, k), tap(2, kx, c, k));
                    [g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2]
                };
                let columns = [column(0), column(1), column(2)];
                let gg: [[f32; 3]; 4] = std::array::from_fn(|i| columns.map(|col| col[i]));
                // `(G g) Gᵀ`: each row of three becomes four.
                let at = packed_index(c_in, c, k);
                for (i, [r0, r1, r2]) in gg.into_iter().enumerate() {
                    let row = [r0, 0.5 * (r0 + r1 + r2), 0.5 * (r0 - r1 + r2), r2];
                    for (j, v) in row.into_iter().enumerate() {
                        // SAFETY: `at < packed` (the packed index of a pair), so the
                        // offset lies inside `u` (checked above); row `c` of every
                        // packed operand belongs to this task alone.
                        unsafe { *u.get().add((i * 4 + j) * packed + at) = v };
                    }
                }
            }
        }
    };
    cpu.inner().pool.run(c_in.div_ceil(per_task.max(1)), &task);
}

/// Where a transform writes a tile's channels inside one position's plane of
/// `count` tiles.
#[derive(Clone, Copy, Debug)]
pub(super) enum Layout {
    /// Tile `i`, channel `c` at `i * channels + c`: a row-major `count x channels`
    /// left operand, which the forward's products read in place.
    Rows,
    /// Packed as a `count x channels` right operand of
    /// [`sgemm_prepacked`](crate::cpu::gemm::sgemm_prepacked) (at [`packed_index`]), for the weight gradient's products.
    Packed,
}

impl Layout {
    /// Values in one position's plane.
    pub(super) fn plane(self, count: usize, channels: usize) -> usize {
        match self {
            Layout::Rows => count * channels,
            Layout::Packed => packed_len(count, channels),
        }
    }

    /// `(start, strip)`: channel `c` of tile `i` is at
    /// `start + c / PACKED_STRIP * strip + c % PACKED_STRIP`.
    pub(super) fn tile(self, i: usize, count: usize, channels: usize) -> (usize, usize) {
        match self {
            Layout::Rows => (i * channels, PACKED_STRIP),
            Layout::Packed => (i * PACKED_STRIP, PACKED_STRIP * count),
        }
    }
}

/// Where channel `c` of a tile lies from the tile's start, for a layout's `strip`.
#[inline(always)]
pub(super) fn channel_offset(c: usize, strip: usize) -> usize {
    c / PACKED_STRIP * strip + c % PACKED_STRIP
}

/// `V[ξ] = Bᵀ d B` for tiles `first..first + count`, with
/// `Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`, position `ξ`
/// in plane `ξ` of `v`, laid out as `layout` says.
#[allow(clippy::too_many_arguments)]
pub(super) fn transform_input(
    isa: Isa,
    p: &Conv2dParams,
    plan: &Tiles,
    x: &[f32],
    first: usize,
    count: usize,
    layout: Layout,
    v: &mut [f32],
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` and `Isa::Avx2Fma` are only chosen where the CPU has
        // AVX2 and FMA.
        Isa::Avx512 | Isa::Avx2Fma => unsafe {
            transform_input_avx2(p, plan, x, first, count, layout, v)
        },
        Isa::Portable => transform_input_with(p, plan, x, first, count, layout, v, None),
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_input_avx2(
    p: &Conv2dParams,
    plan: &Tiles,
    x: &[f32],
    first: usize,
    count: usize,
    layout: Layout,
    v: &mut [f32],
) {
    transform_input_with(p, plan, x, first, count, layout, v, Some(avx2::input_tile));
}

/// `Y = Aᵀ M A` for tiles `first..first + count`, with
/// `Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`, then the epilogue, into the output pixels
/// that exist (an odd edge drops half a tile).
///
/// # Safety
/// `y` must hold every output pixel of `p`, and those of these tiles must not be
/// accessed by anyone else during the call.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn transform_output(
    isa: Isa,
    p: &Conv2dParams,
    plan: &Tiles,
    m: &[f32],
    first: usize,
    count: usize,
    epilogue: &Epilogue<'_>,
    y: SendPtr<f32>,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` and `Isa::Avx2Fma` are only chosen where the CPU has
        // AVX2 and FMA; the rest is the caller's contract.
        Isa::Avx512 | Isa::Avx2Fma => unsafe {
            transform_output_avx2(p, plan, m, first, count, epilogue, y);
        },
        // SAFETY: the caller's contract.
        Isa::Portable => unsafe {
            transform_output_with(p, plan, m, first, count, epilogue, y, None);
        },
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; otherwise as [`transform_output`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_output_avx2(
    p: &Conv2dParams,
    plan: &Tiles,
    m: &[f32],
    first: usize,
    count: usize,
    epilogue: &Epilogue<'_>,
    y: SendPtr<f32>,
) {
    // SAFETY: the caller's contract; `avx2::output_tile` needs AVX2, which this
    // function has.
    unsafe {
        transform_output_with(
            p,
            plan,
            m,
            first,
            count,
            epilogue,
            y,
            Some(avx2::output_tile),
        );
    }
}

/// `Z[ξ] = A dY Aᵀ` for tiles `first..first + count`, with
/// `A = [[1, 0], [1, 1], [1, -1], [0, -1]]` and `dY` the output gradient's 2x2 block
/// of each tile (zero where an odd edge drops half a tile). Position `ξ` of tile `i`
/// and channel `k` goes to `(ξ * count + i) * c_out + k`.
pub(super) fn transform_output_gradient(
    isa: Isa,
    p: &Conv2dParams,
    plan: &Tiles,
    dy: &[f32],
    first: usize,
    count: usize,
    z: &mut [f32],
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` and `Isa::Avx2Fma` are only chosen where the CPU has
        // AVX2 and FMA.
        Isa::Avx512 | Isa::Avx2Fma => unsafe {
            transform_output_gradient_avx2(p, plan, dy, first, count, z)
        },
        Isa::Portable => transform_output_gradient_with(p, plan, dy, first, count, z, None),
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_output_gradient_avx2(
    p: &Conv2dParams,
    plan: &Tiles,
    dy: &[f32],
    first: usize,
    count: usize,
    z: &mut [f32],
) {
    transform_output_gradient_with(
        p,
        plan,
        dy,
        first,
        count,
        z,
        Some(avx2::output_gradient_tile),
    );
}

/// `dx += B dV Bᵀ` for tiles `first..first + count` (whole images, `images` holding
/// their input gradients), with `B = [[1, 0, 0, 0], [0, 1, -1, 1], [-1, 1, 1, 0],
/// [0, 0, 0, -1]]`; cells of a tile's 4x4 input block outside the image (padding)
/// are dropped. Position `ξ` of tile `i`, channel `c`, is at `(ξ * count + i) * c_in +
/// c` of `dv`.
pub(super) fn scatter_input_gradient(
    isa: Isa,
    p: &Conv2dParams,
    plan: &Tiles,
    dv: &[f32],
    first: usize,
    count: usize,
    images: &mut [f32],
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` and `Isa::Avx2Fma` are only chosen where the CPU has
        // AVX2 and FMA.
        Isa::Avx512 | Isa::Avx2Fma => unsafe {
            scatter_input_gradient_avx2(p, plan, dv, first, count, images)
        },
        Isa::Portable => scatter_input_gradient_with(p, plan, dv, first, count, images, None),
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scatter_input_gradient_avx2(
    p: &Conv2dParams,
    plan: &Tiles,
    dv: &[f32],
    first: usize,
    count: usize,
    images: &mut [f32],
) {
    scatter_input_gradient_with(
        p,
        plan,
        dv,
        first,
        count,
        images,
        Some(avx2::input_gradient_tile),
    );
}
