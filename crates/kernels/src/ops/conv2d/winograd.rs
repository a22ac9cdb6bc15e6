//! The forward pass and both gradients of 3x3, stride-1 convolutions by Winograd's
//! minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016), on the CPU.
//!
//! Each 2x2 block of output pixels (a tile) is computed from the 4x4 block of input
//! under it: the input block `d` and the kernel `g` of every (input, output) channel
//! pair are transformed (`V = Bᵀ d B`, `U = G g Gᵀ`), multiplied position by position,
//! and transformed back (`Y = Aᵀ M A`). The position-by-position products, summed over
//! input channels, are 16 matrix products `M[ξ] = V[ξ] U[ξ]` of
//! `(tiles x c_in) x (c_in x c_out)`: 16 multiply-adds per tile and channel pair where
//! the direct convolution takes 36, so 2.25x fewer (less where an odd output edge
//! leaves half a tile unused).
//!
//! Tiles go in blocks, one block per pool task, sized so that a block's transformed
//! input and products stay in L2 next to the transformed kernel; the products run
//! on the task's thread, on a kernel packed once per call.
//!
//! The transforms are exact in real arithmetic; in `f32` they round differently from
//! the direct sum (within a few units in the last place of the largest terms, as the
//! tests check). Both gradients differentiate the same formula (see [`gradients`]),
//! from the transformed output gradient `Z = A dY Aᵀ` of each tile: the kernel's is
//! `Gᵀ dU G` with `dU[ξ]` the sum over tiles of `V[ξ]ᵀ Z[ξ]`, 16 products of
//! `(c_out x tiles) x (tiles x c_in)`; the input's is `B dV Bᵀ` with
//! `dV[ξ] = Z[ξ] U[ξ]ᵀ`, added over each tile's input block.

use super::Conv2dParams;
use crate::Cpu;
use crate::cpu::SendPtr;
use crate::cpu::gemm::{
    Epilogue, Isa, MatMut, MatRef, PACKED_STRIP, packed_index, packed_len, sgemm_prepacked,
};
use crate::ops::activation::ActivationKind;
use crate::ops::us;

/// Transform positions: a 4x4 input block.
const POSITIONS: usize = 16;

/// Fewer channels than this on either side make the 16 products too thin to beat
/// the direct product (the seed CNN's first layer, three input channels, stays
/// direct).
const MIN_CHANNELS: usize = 16;

/// The most channel pairs (`c_in * c_out`) for the transform, forward and backward:
/// every block reads the transformed kernel (16 values per pair, 512 KiB at 8,192
/// pairs), and each task of the gradients keeps a sum of the same size. Measured on
/// the seed CNN at batch 64, fastest of alternating runs:
/// - 32 -> 64 channels, one thread: forward 2.73 ms against 3.93 direct; backward
///   5.7 ms against 8.5 direct, and 6.6 with the input gradient taken as the forward
///   algorithm on the adjoint convolution (the output gradient padded by two,
///   convolved with the turned kernel: 30 % more tiles);
/// - 64 -> 128 channels on 4x4 images (8,192 pairs): forward 1.20 ms against 1.43
///   direct on one thread, 0.63 against 0.78 on two (0.85 before the kernel's
///   transform was split between the threads); backward 2.2 ms against 3.0 direct
///   (the adjoint, mostly padding there, took 3.2).
const MAX_CHANNEL_PAIRS: usize = 8192;

/// The bytes a block's transformed input and products may take: with the
/// transformed kernel (128 KiB for 32 -> 64 channels) they fit a 512 KiB L2, the
/// smallest of the x86 cores kiln targets (measured against 128 and 512 KiB: within
/// noise).
const BLOCK_BYTES: usize = 256 * 1024;

/// The bytes of a weight-gradient block's transforms. Its products are `tiles` deep,
/// so that longer blocks keep the micro-kernel's accumulators busy for longer
/// between loads and stores of the sums. The seed CNN's second layer on one thread
/// (fastest of alternating runs), backward: 6.43 ms with 256 KiB, 6.07 with 512 KiB,
/// 6.17 with 1 MiB.
const GRADIENT_BLOCK_BYTES: usize = 2 * BLOCK_BYTES;

/// The most input channels whose edge tiles' blocks (16 pixels) are copied to the
/// stack for the AVX2 transform; wider layers transform their edge tiles with the
/// portable code.
const MAX_EDGE_CHANNELS: usize = 256;

/// Channels transformed together: one AVX vector.
const LANES: usize = 8;

// A vector of channels never straddles two strips of a packed operand.
const _: () = assert!(PACKED_STRIP.is_multiple_of(LANES));

/// Whether the passes of `p` go through Winograd's transform: a 3x3, stride-1
/// kernel between enough channels, and not too many pairs of them.
pub(super) fn applies(p: &Conv2dParams) -> bool {
    p.kernel_h == 3
        && p.kernel_w == 3
        && p.stride_h == 1
        && p.stride_w == 1
        && us(p.in_c) >= MIN_CHANNELS
        && us(p.out_c) >= MIN_CHANNELS
        && us(p.in_c) * us(p.out_c) <= MAX_CHANNEL_PAIRS
}

/// How the tiles of one convolution are cut into blocks (pool tasks).
#[derive(Clone, Copy, Debug)]
struct Tiles {
    tiles_h: usize,
    tiles_w: usize,
    /// Tiles over the batch.
    tiles: usize,
    /// Tiles per block.
    block: usize,
}

/// The tiles of `p` in blocks of `block_bytes`, at `tile_bytes` per tile.
fn tiles(p: &Conv2dParams, block_bytes: usize, tile_bytes: usize) -> Tiles {
    let (tiles_h, tiles_w) = (us(p.out_h).div_ceil(2), us(p.out_w).div_ceil(2));
    Tiles {
        tiles_h,
        tiles_w,
        tiles: us(p.batch) * tiles_h * tiles_w,
        block: (block_bytes / tile_bytes.max(1)).max(6),
    }
}

/// The forward pass's tiles and buffers.
#[derive(Clone, Copy, Debug)]
struct Plan {
    tiles: Tiles,
    /// The transformed kernel: 16 packed `c_in x c_out` operands.
    u_len: usize,
    /// Per worker: a block's transformed input, `16 x block x c_in`.
    v_len: usize,
    /// Per worker: a block's products, `16 x block x c_out`.
    m_len: usize,
}

fn plan(p: &Conv2dParams) -> Plan {
    let (c, k) = (us(p.in_c), us(p.out_c));
    let tiles = tiles(p, BLOCK_BYTES, POSITIONS * (c + k) * 4);
    Plan {
        tiles,
        u_len: POSITIONS * packed_len(c, k),
        v_len: POSITIONS * tiles.block * c,
        m_len: POSITIONS * tiles.block * k,
    }
}

/// Scratch the forward pass needs on `threads` threads.
pub(super) fn workspace_len(p: &Conv2dParams, threads: usize) -> usize {
    let plan = plan(p);
    plan.u_len + threads * (plan.v_len + plan.m_len)
}

/// The gradients' tiles and buffers.
#[derive(Clone, Copy, Debug)]
struct GradientPlan {
    /// Blocks of whole images: the input gradient's blocks of different tiles
    /// overlap, so that a task must own every tile of its images.
    tiles: Tiles,
    /// Per task: a block's transformed input, packed: `16 x block x c_in` (and the
    /// strips' padding); then the gradient of that transform, `16 x block x c_in`.
    v_len: usize,
    /// Per task: a block's transformed output gradient, `16 x block x c_out`.
    z_len: usize,
    /// Per task: the running sum of `dU[ξ]ᵀ`, `16 x c_out x c_in`.
    sum_len: usize,
    /// Once: the transposed transformed kernel for the input gradient, 16 packed
    /// `c_out x c_in` operands.
    u_len: usize,
}

fn gradient_plan(p: &Conv2dParams) -> GradientPlan {
    let (c, k) = (us(p.in_c), us(p.out_c));
    let mut tiles = tiles(
        p,
        GRADIENT_BLOCK_BYTES,
        POSITIONS * (c.next_multiple_of(PACKED_STRIP) + k) * 4,
    );
    let per_image = (tiles.tiles_h * tiles.tiles_w).max(1);
    tiles.block = ((tiles.block + per_image / 2) / per_image).max(1) * per_image;
    GradientPlan {
        tiles,
        v_len: POSITIONS * packed_len(tiles.block, c),
        z_len: POSITIONS * tiles.block * k,
        sum_len: POSITIONS * k * c,
        u_len: POSITIONS * packed_len(k, c),
    }
}

/// Scratch [`gradients`] needs on `threads` threads.
pub(super) fn gradients_workspace_len(p: &Conv2dParams, threads: usize) -> usize {
    let plan = gradient_plan(p);
    plan.u_len + threads * (plan.v_len + plan.z_len + plan.sum_len)
}

/// `y = act(conv(x, w) + bias)`; the slices have been checked against `p`, and `ws`
/// holds [`workspace_len`] values.
pub(super) fn forward(
    cpu: &Cpu,
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    epilogue: &Epilogue<'_>,
    y: &mut [f32],
    ws: &mut [f32],
) {
    // Kernel layout `[3, 3, c_in, c_out]`.
    let (c_in, c_out) = (us(p.in_c), us(p.out_c));
    let tap = |ky: usize, kx: usize, c: usize, k: usize| w[((ky * 3 + kx) * c_in + c) * c_out + k];
    convolve(cpu, p, x, tap, epilogue, y, ws);
}

/// `dw += dL/dw` and, where `dx` is given, `dx = dL/dx`, from the forward's input
/// `x`, the kernel `w` and the output gradient `dy` (at the pre-activation), for a
/// geometry that [`applies`]; `ws` holds [`gradients_workspace_len`] values.
///
/// Per block of tiles: `Z = A dY Aᵀ`; `dU[ξ] += V[ξ]ᵀ Z[ξ]`, each task summing its
/// blocks into a buffer of its own, added up and turned into the kernel's gradient by
/// `dw = Gᵀ dU G` once per channel pair; and for the input gradient `dV[ξ] = Z[ξ]
/// U[ξ]ᵀ`, `dx += B dV Bᵀ` over each tile's input block (overlapping its neighbours'
/// by two pixels: a task owns whole images).
#[allow(clippy::too_many_arguments)]
pub(super) fn gradients(
    cpu: &Cpu,
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    dx: Option<&mut [f32]>,
    ws: &mut [f32],
) {
    let plan = gradient_plan(p);
    let (c, k) = (us(p.in_c), us(p.out_c));
    let threads = cpu.threads();
    let per_worker = plan.v_len + plan.z_len + plan.sum_len;
    assert!(
        ws.len() >= plan.u_len + threads * per_worker,
        "winograd: short scratch"
    );
    assert!(
        x.len() >= p.input_len() && dy.len() >= p.output_len() && dw.len() >= 9 * c * k,
        "winograd: short operand"
    );
    let (ut, ws) = ws.split_at_mut(plan.u_len);
    let dx = match dx {
        Some(dx) => {
            assert!(dx.len() >= p.input_len(), "winograd: short input gradient");
            // `Uᵀ`: the kernel's transform with the channel axes swapped.
            let q = Conv2dParams {
                in_c: p.out_c,
                out_c: p.in_c,
                ..*p
            };
            let tap = |ky: usize, kx: usize, o: usize, i: usize| w[((ky * 3 + kx) * c + i) * k + o];
            transform_kernel(cpu, &q, tap, ut);
            Some(SendPtr(dx.as_mut_ptr()))
        }
        None => None,
    };
    let ut: &[f32] = ut;
    let ws = &mut ws[..threads * per_worker];
    for mine in ws.chunks_exact_mut(per_worker) {
        mine[plan.v_len + plan.z_len..].fill(0.0);
    }
    let scratch = SendPtr(ws.as_mut_ptr());
    let isa = cpu.inner().gemm.isa();
    // One task per thread, each over a fixed run of blocks with a sum of its own, so
    // that the result does not depend on which worker takes which block.
    let blocks = plan.tiles.tiles.div_ceil(plan.tiles.block);
    let per_task = blocks.div_ceil(threads);
    let per_image = plan.tiles.tiles_h * plan.tiles.tiles_w;
    let image_len = us(p.in_h) * us(p.in_w) * c;
    let task = |t: usize, _worker: usize| {
        // SAFETY: `t < threads` (the tasks below), so this part of the scratch exists
        // (checked above), and only task `t` uses it.
        let mine = unsafe {
            std::slice::from_raw_parts_mut(scratch.get().add(t * per_worker), per_worker)
        };
        let (v, rest) = mine.split_at_mut(plan.v_len);
        let (z, sum) = rest.split_at_mut(plan.z_len);
        for b in t * per_task..blocks.min((t + 1) * per_task) {
            let first = b * plan.tiles.block;
            let count = plan.tiles.block.min(plan.tiles.tiles - first);
            gradient_block(isa, p, &plan.tiles, (x, dy), first, count, (v, z), sum);
            if let Some(dx) = dx {
                // SAFETY: blocks hold whole images (`gradient_plan`), so these images'
                // input gradients, inside `dx` (checked above), belong to this task.
                let images = unsafe {
                    std::slice::from_raw_parts_mut(
                        dx.get().add(first / per_image * image_len),
                        count / per_image * image_len,
                    )
                };
                input_gradient_block(isa, p, &plan.tiles, (z, ut), first, count, v, images);
            }
        }
    };
    cpu.inner().pool.run(blocks.div_ceil(per_task), &task);

    // The tasks' sums, added into the first one's, in order.
    let (total, others) = ws.split_at_mut(per_worker);
    let total = &mut total[plan.v_len + plan.z_len..];
    for other in others.chunks_exact(per_worker) {
        for (t, o) in total.iter_mut().zip(&other[plan.v_len + plan.z_len..]) {
            *t += o;
        }
    }
    // `dw += Gᵀ dU G`, with `Gᵀ x = [x0 + ½(x1 + x2), ½(x1 - x2), ½(x1 + x2) + x3]`.
    let gt = |x: [f32; 4]| {
        let (s, d) = (0.5 * (x[1] + x[2]), 0.5 * (x[1] - x[2]));
        [x[0] + s, d, s + x[3]]
    };
    for o in 0..k {
        for i in 0..c {
            let du = |xi: usize| total[(xi * k + o) * c + i];
            // `Gᵀ dU`: along the rows (the kernel's `ky`), column by column.
            let columns: [[f32; 3]; 4] =
                std::array::from_fn(|col| gt([du(col), du(4 + col), du(8 + col), du(12 + col)]));
            for ky in 0..3 {
                let row = gt(columns.map(|col| col[ky]));
                for (kx, g) in row.into_iter().enumerate() {
                    dw[((ky * 3 + kx) * c + i) * k + o] += g;
                }
            }
        }
    }
}

/// Adds `dU[ξ]ᵀ` of tiles `first..first + count` into `sum`, with `v` and `z` for
/// the block's transforms.
#[allow(clippy::too_many_arguments)]
fn gradient_block(
    isa: Isa,
    p: &Conv2dParams,
    plan: &Tiles,
    (x, dy): (&[f32], &[f32]),
    first: usize,
    count: usize,
    (v, z): (&mut [f32], &mut [f32]),
    sum: &mut [f32],
) {
    let (c, k) = (us(p.in_c), us(p.out_c));
    let v_plane = packed_len(count, c);
    let v = &mut v[..POSITIONS * v_plane];
    if !c.is_multiple_of(PACKED_STRIP) {
        // The last strip's columns past `c_in` are read by the products (and their
        // results dropped): zeros, never stale values.
        v.fill(0.0);
    }
    transform_input(isa, p, plan, x, first, count, Layout::Packed, v);
    let z = &mut z[..POSITIONS * count * k];
    transform_output_gradient(isa, p, plan, dy, first, count, z);
    for xi in 0..POSITIONS {
        // `dU[ξ]ᵀ += Z[ξ]ᵀ V[ξ]`: `(c_out x tiles) x (tiles x c_in)`.
        let zt = MatRef {
            data: &z[xi * count * k..][..count * k],
            rows: k,
            cols: count,
            row_stride: 1,
            col_stride: k,
        };
        sgemm_prepacked(
            isa,
            zt,
            &v[xi * v_plane..][..v_plane],
            c,
            1.0,
            MatMut::row_major(&mut sum[xi * k * c..][..k * c], k, c),
        );
    }
}

/// The input gradient of tiles `first..first + count` (whole images) into `images`,
/// their input gradients (overwritten): `dV[ξ] = Z[ξ] U[ξ]ᵀ` into `dv`, then
/// `B dV Bᵀ` added over each tile's input block.
#[allow(clippy::too_many_arguments)]
fn input_gradient_block(
    isa: Isa,
    p: &Conv2dParams,
    plan: &Tiles,
    (z, ut): (&[f32], &[f32]),
    first: usize,
    count: usize,
    dv: &mut [f32],
    images: &mut [f32],
) {
    let (c, k) = (us(p.in_c), us(p.out_c));
    let packed = packed_len(k, c);
    let plane = count * c;
    for xi in 0..POSITIONS {
        sgemm_prepacked(
            isa,
            MatRef::row_major(&z[xi * count * k..][..count * k], count, k),
            &ut[xi * packed..][..packed],
            c,
            0.0,
            MatMut::row_major(&mut dv[xi * plane..][..plane], count, c),
        );
    }
    images.fill(0.0);
    scatter_input_gradient(isa, p, plan, &dv[..POSITIONS * plane], first, count, images);
}

/// `dx += B dV Bᵀ` for tiles `first..first + count` (whole images, `images` holding
/// their input gradients), with `B = [[1, 0, 0, 0], [0, 1, -1, 1], [-1, 1, 1, 0],
/// [0, 0, 0, -1]]`; cells of a tile's 4x4 input block outside the image (padding)
/// are dropped. Position `ξ` of tile `i`, channel `c`, is at `(ξ * count + i) * c_in +
/// c` of `dv`.
fn scatter_input_gradient(
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
        // SAFETY: `Isa::Avx2Fma` is only chosen where the CPU has AVX2 and FMA.
        Isa::Avx2Fma => unsafe { scatter_input_gradient_avx2(p, plan, dv, first, count, images) },
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

/// A whole-vector `dx += B M Bᵀ` of one tile, for every channel (see
/// [`avx2::input_gradient_tile`]).
type InputGradientTile = unsafe fn(*const f32, usize, *mut f32, usize, usize);

/// The four outputs of `B` applied to four inputs: `[m0, m1 - m2 + m3, m1 + m2 - m0,
/// -m3]`.
#[inline(always)]
fn b_of(m: Row) -> Row {
    [
        m[0],
        add(sub(m[1], m[2]), m[3]),
        sub(add(m[1], m[2]), m[0]),
        neg(m[3]),
    ]
}

#[inline(always)]
fn scatter_input_gradient_with(
    p: &Conv2dParams,
    plan: &Tiles,
    dv: &[f32],
    first: usize,
    count: usize,
    images: &mut [f32],
    whole_vectors: Option<InputGradientTile>,
) {
    let (ih, iw, c_in) = (us(p.in_h), us(p.in_w), us(p.in_c));
    let per_image = plan.tiles_h * plan.tiles_w;
    let plane = count * c_in;
    assert!(
        dv.len() >= POSITIONS * plane && images.len() >= count / per_image * ih * iw * c_in,
        "winograd: short input gradient"
    );
    for i in 0..count {
        let tile = first + i;
        let (n, r) = ((tile - first) / per_image, tile % per_image);
        let (ty, tx) = (r / plan.tiles_w, r % plan.tiles_w);
        let y0 = (2 * ty) as isize - p.pad_top as isize;
        let x0 = (2 * tx) as isize - p.pad_left as isize;
        let image = &mut images[n * ih * iw * c_in..(n + 1) * ih * iw * c_in];
        if let Some(tile_fn) = whole_vectors
            && c_in.is_multiple_of(LANES)
        {
            let inside = y0 >= 0 && x0 >= 0 && y0 as usize + 4 <= ih && x0 as usize + 4 <= iw;
            if inside {
                // SAFETY: the 4x4 block lies inside the image (checked), and position
                // `ξ` of this tile's channels lies inside `dv` (checked above);
                // `tile_fn` needs AVX2, which the caller that passed it has.
                unsafe {
                    tile_fn(
                        dv[i * c_in..].as_ptr(),
                        plane,
                        image[(y0 as usize * iw + x0 as usize) * c_in..].as_mut_ptr(),
                        iw * c_in,
                        c_in,
                    );
                }
            } else {
                // An edge tile: eight channels at a time into a 4x4 block, of which the
                // pixels inside the image are added.
                for c0 in (0..c_in).step_by(LANES) {
                    let mut block = [[0.0f32; LANES]; POSITIONS];
                    // SAFETY: as above, for channels `c0..c0 + LANES`; the block holds
                    // 16 pixels of `LANES` channels, four a row.
                    unsafe {
                        tile_fn(
                            dv[i * c_in + c0..].as_ptr(),
                            plane,
                            block.as_mut_ptr().cast(),
                            4 * LANES,
                            LANES,
                        );
                    }
                    for (j, val) in block.iter().enumerate() {
                        let (yy, xx) = (y0 + (j / 4) as isize, x0 + (j % 4) as isize);
                        if (0..ih as isize).contains(&yy) && (0..iw as isize).contains(&xx) {
                            let at = (yy as usize * iw + xx as usize) * c_in + c0;
                            let cell = load(image, at, LANES);
                            store(image, at, LANES, &add(cell, *val));
                        }
                    }
                }
            }
            continue;
        }
        for c0 in (0..c_in).step_by(LANES) {
            let len = LANES.min(c_in - c0);
            // `B dV`: row `a` of the result from the rows of `dV`, column by column.
            let m = |xi: usize| load(dv, (xi * count + i) * c_in + c0, len);
            let rows: [Row; 4] = {
                let cols: [Row; 4] =
                    std::array::from_fn(|b| b_of([m(b), m(4 + b), m(8 + b), m(12 + b)]));
                std::array::from_fn(|a| [cols[0][a], cols[1][a], cols[2][a], cols[3][a]])
            };
            for (a, row) in rows.into_iter().enumerate() {
                let yy = y0 + a as isize;
                if !(0..ih as isize).contains(&yy) {
                    continue;
                }
                // `(B dV) Bᵀ`: the row transformed along the row.
                for (b, val) in b_of(row).into_iter().enumerate() {
                    let xx = x0 + b as isize;
                    if !(0..iw as isize).contains(&xx) {
                        continue;
                    }
                    let at = (yy as usize * iw + xx as usize) * c_in + c0;
                    let cell = load(image, at, len);
                    store(image, at, len, &add(cell, val));
                }
            }
        }
    }
}

/// `Z[ξ] = A dY Aᵀ` for tiles `first..first + count`, with
/// `A = [[1, 0], [1, 1], [1, -1], [0, -1]]` and `dY` the output gradient's 2x2 block
/// of each tile (zero where an odd edge drops half a tile). Position `ξ` of tile `i`
/// and channel `k` goes to `(ξ * count + i) * c_out + k`.
fn transform_output_gradient(
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
        // SAFETY: `Isa::Avx2Fma` is only chosen where the CPU has AVX2 and FMA.
        Isa::Avx2Fma => unsafe { transform_output_gradient_avx2(p, plan, dy, first, count, z) },
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

/// A whole-vector transform of one tile's output gradient, for every channel (see
/// [`avx2::output_gradient_tile`]).
type GradientTile = unsafe fn(*const f32, usize, usize, *mut f32, usize);

/// `-a` lane by lane.
#[inline(always)]
fn neg(a: [f32; LANES]) -> [f32; LANES] {
    sub([0.0; LANES], a)
}

#[inline(always)]
fn transform_output_gradient_with(
    p: &Conv2dParams,
    plan: &Tiles,
    dy: &[f32],
    first: usize,
    count: usize,
    z: &mut [f32],
    whole_vectors: Option<GradientTile>,
) {
    let (oh, ow, c_out) = (us(p.out_h), us(p.out_w), us(p.out_c));
    let per_image = plan.tiles_h * plan.tiles_w;
    let plane = count * c_out;
    assert!(
        z.len() >= POSITIONS * plane,
        "winograd: short transform buffer"
    );
    assert!(
        dy.len() >= p.output_len(),
        "winograd: short output gradient"
    );
    for i in 0..count {
        let tile = first + i;
        let (n, r) = (tile / per_image, tile % per_image);
        let (ty, tx) = (r / plan.tiles_w, r % plan.tiles_w);
        let pixel = |a: usize, b: usize| {
            let (oy, ox) = (2 * ty + a, 2 * tx + b);
            (oy < oh && ox < ow).then_some(((n * oh + oy) * ow + ox) * c_out)
        };
        let pixels = [pixel(0, 0), pixel(0, 1), pixel(1, 0), pixel(1, 1)];
        if let Some(tile_fn) = whole_vectors
            && c_out.is_multiple_of(LANES)
        {
            if let [Some(at), Some(_), Some(_), Some(_)] = pixels {
                // SAFETY: the tile's four pixels exist, so their `c_out` channels lie
                // inside `dy` (checked above); position `ξ` of the tile, up to
                // `15 * plane + i * c_out + c_out`, lies inside `z` (checked above);
                // `tile_fn` needs AVX2, which the caller that passed it has.
                unsafe {
                    tile_fn(
                        dy[at..].as_ptr(),
                        ow * c_out,
                        c_out,
                        z[i * c_out..].as_mut_ptr(),
                        plane,
                    );
                }
            } else {
                // Half a tile: its pixels, eight channels at a time, copied into a
                // 2x2 block with zeros for those that do not exist.
                for k0 in (0..c_out).step_by(LANES) {
                    let block =
                        pixels.map(|at| at.map_or([0.0; LANES], |at| load(dy, at + k0, LANES)));
                    // SAFETY: the block holds four pixels of `LANES` channels, two a
                    // row; position `ξ` of these channels lies inside `z` (as above).
                    unsafe {
                        tile_fn(
                            block.as_ptr().cast(),
                            2 * LANES,
                            LANES,
                            z[i * c_out + k0..].as_mut_ptr(),
                            plane,
                        );
                    }
                }
            }
            continue;
        }
        for k0 in (0..c_out).step_by(LANES) {
            let len = LANES.min(c_out - k0);
            let [y00, y01, y10, y11] =
                pixels.map(|at| at.map_or([0.0; LANES], |at| load(dy, at + k0, len)));
            // `A dY`: four rows of two; each row `[l, r]` then becomes
            // `[l, l + r, l - r, -r]` along the row.
            let rows = [
                [y00, y01],
                [add(y00, y10), add(y01, y11)],
                [sub(y00, y10), sub(y01, y11)],
                [neg(y10), neg(y11)],
            ];
            for (a, [l, r]) in rows.into_iter().enumerate() {
                let row = [l, add(l, r), sub(l, r), neg(r)];
                for (b, val) in row.iter().enumerate() {
                    store(z, ((4 * a + b) * count + i) * c_out + k0, len, val);
                }
            }
        }
    }
}

/// `y = act(conv(x, g) + bias)` with the kernel given tap by tap:
/// `tap(ky, kx, c, k)`.
fn convolve(
    cpu: &Cpu,
    p: &Conv2dParams,
    x: &[f32],
    tap: impl Fn(usize, usize, usize, usize) -> f32 + Sync,
    epilogue: &Epilogue<'_>,
    y: &mut [f32],
    ws: &mut [f32],
) {
    let plan = plan(p);
    let (c, k) = (us(p.in_c), us(p.out_c));
    let (u, scratch) = ws.split_at_mut(plan.u_len);
    transform_kernel(cpu, p, tap, u);
    let u: &[f32] = u;
    let per_worker = plan.v_len + plan.m_len;
    assert!(
        scratch.len() >= cpu.threads() * per_worker,
        "winograd: short scratch"
    );
    assert!(y.len() >= p.output_len(), "winograd: short output");
    let scratch = SendPtr(scratch.as_mut_ptr());
    let y = SendPtr(y.as_mut_ptr());
    let isa = cpu.inner().gemm.isa();
    let packed = packed_len(c, k);
    let task = |t: usize, worker: usize| {
        let first = t * plan.tiles.block;
        let count = plan.tiles.block.min(plan.tiles.tiles - first);
        // SAFETY: `worker < threads`, and the pool runs one task at a time per worker,
        // so this worker's part of the scratch (checked to exist above) is used by this
        // task alone.
        let mine = unsafe {
            std::slice::from_raw_parts_mut(scratch.get().add(worker * per_worker), per_worker)
        };
        let (v, m) = mine.split_at_mut(plan.v_len);
        let (v, m) = (
            &mut v[..POSITIONS * count * c],
            &mut m[..POSITIONS * count * k],
        );
        transform_input(isa, p, &plan.tiles, x, first, count, Layout::Rows, v);
        for xi in 0..POSITIONS {
            sgemm_prepacked(
                isa,
                MatRef::row_major(&v[xi * count * c..][..count * c], count, c),
                &u[xi * packed..][..packed],
                k,
                0.0,
                MatMut::row_major(&mut m[xi * count * k..][..count * k], count, k),
            );
        }
        // SAFETY: the output pixels of tiles `first..first + count` belong to this task
        // alone, and `y` holds every output pixel (checked above).
        unsafe { transform_output(isa, p, &plan.tiles, m, first, count, epilogue, y) };
    };
    let blocks = plan.tiles.tiles.div_ceil(plan.tiles.block);
    cpu.inner().pool.run(blocks, &task);
}

/// `U[ξ] = G g Gᵀ` for every channel pair, written packed for the products:
/// `G = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]`. The input channels are split
/// between the pool's threads (each writes its own rows of the packed operands).
fn transform_kernel(
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
enum Layout {
    /// Tile `i`, channel `c` at `i * channels + c`: a row-major `count x channels`
    /// left operand, which the forward's products read in place.
    Rows,
    /// Packed as a `count x channels` right operand of [`sgemm_prepacked`] (at
    /// [`packed_index`]), for the weight gradient's products.
    Packed,
}

impl Layout {
    /// Values in one position's plane.
    fn plane(self, count: usize, channels: usize) -> usize {
        match self {
            Layout::Rows => count * channels,
            Layout::Packed => packed_len(count, channels),
        }
    }

    /// `(start, strip)`: channel `c` of tile `i` is at
    /// `start + c / PACKED_STRIP * strip + c % PACKED_STRIP`.
    fn tile(self, i: usize, count: usize, channels: usize) -> (usize, usize) {
        match self {
            Layout::Rows => (i * channels, PACKED_STRIP),
            Layout::Packed => (i * PACKED_STRIP, PACKED_STRIP * count),
        }
    }
}

/// Where channel `c` of a tile lies from the tile's start, for a layout's `strip`.
#[inline(always)]
fn channel_offset(c: usize, strip: usize) -> usize {
    c / PACKED_STRIP * strip + c % PACKED_STRIP
}

/// `V[ξ] = Bᵀ d B` for tiles `first..first + count`, with
/// `Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`, position `ξ`
/// in plane `ξ` of `v`, laid out as `layout` says.
#[allow(clippy::too_many_arguments)]
fn transform_input(
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
        // SAFETY: `Isa::Avx2Fma` is only chosen where the CPU has AVX2 and FMA.
        Isa::Avx2Fma => unsafe { transform_input_avx2(p, plan, x, first, count, layout, v) },
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

/// `len <= LANES` values of `src` from `at`, zero after them; a whole vector is one
/// fixed-size load (a variable-length copy would be a `memcpy` call).
#[inline(always)]
fn load(src: &[f32], at: usize, len: usize) -> [f32; LANES] {
    if len == LANES {
        let mut v = [0.0; LANES];
        v.copy_from_slice(&src[at..at + LANES]);
        v
    } else {
        let mut v = [0.0; LANES];
        v[..len].copy_from_slice(&src[at..at + len]);
        v
    }
}

/// Stores the first `len <= LANES` lanes of `v` at `dst[at..]`.
#[inline(always)]
fn store(dst: &mut [f32], at: usize, len: usize, v: &[f32; LANES]) {
    if len == LANES {
        dst[at..at + LANES].copy_from_slice(v);
    } else {
        for (d, x) in dst[at..at + len].iter_mut().zip(v) {
            *d = *x;
        }
    }
}

/// `a - b`, `a + b` lane by lane (plain loops: `array::from_fn`'s closures are not
/// always inlined).
#[inline(always)]
fn sub(mut a: [f32; LANES], b: [f32; LANES]) -> [f32; LANES] {
    for l in 0..LANES {
        a[l] -= b[l];
    }
    a
}

#[inline(always)]
fn add(mut a: [f32; LANES], b: [f32; LANES]) -> [f32; LANES] {
    for l in 0..LANES {
        a[l] += b[l];
    }
    a
}

/// Four vectors at a time.
type Row = [[f32; LANES]; 4];

#[inline(always)]
fn sub_row(mut a: Row, b: Row) -> Row {
    for k in 0..4 {
        a[k] = sub(a[k], b[k]);
    }
    a
}

#[inline(always)]
fn add_row(mut a: Row, b: Row) -> Row {
    for k in 0..4 {
        a[k] = add(a[k], b[k]);
    }
    a
}

/// The four outputs of `Bᵀ` (or `B` on a row) applied to four inputs.
#[inline(always)]
fn bt(d: [[f32; LANES]; 4]) -> [[f32; LANES]; 4] {
    [
        sub(d[0], d[2]),
        add(d[1], d[2]),
        sub(d[2], d[1]),
        sub(d[1], d[3]),
    ]
}

/// A whole-vector transform of one tile that lies inside the image, for every
/// channel (see [`avx2::input_tile`]).
type InputTile = unsafe fn(*const f32, usize, usize, *mut f32, usize, usize);

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn transform_input_with(
    p: &Conv2dParams,
    plan: &Tiles,
    x: &[f32],
    first: usize,
    count: usize,
    layout: Layout,
    v: &mut [f32],
    interior: Option<InputTile>,
) {
    let (ih, iw, c_in) = (us(p.in_h), us(p.in_w), us(p.in_c));
    let per_image = plan.tiles_h * plan.tiles_w;
    let plane = layout.plane(count, c_in);
    assert!(
        v.len() >= POSITIONS * plane,
        "winograd: short transform buffer"
    );
    // An edge tile's input block, with zeros outside the image.
    let mut edge_block = [0.0f32; POSITIONS * MAX_EDGE_CHANNELS];
    for i in 0..count {
        let tile = first + i;
        let (n, r) = (tile / per_image, tile % per_image);
        let (ty, tx) = (r / plan.tiles_w, r % plan.tiles_w);
        let y0 = (2 * ty) as isize - p.pad_top as isize;
        let x0 = (2 * tx) as isize - p.pad_left as isize;
        let image = &x[n * ih * iw * c_in..(n + 1) * ih * iw * c_in];
        let (start, strip) = layout.tile(i, count, c_in);
        if let Some(tile_fn) = interior
            && c_in.is_multiple_of(LANES)
            && c_in <= MAX_EDGE_CHANNELS
        {
            let inside = y0 >= 0 && x0 >= 0 && y0 as usize + 4 <= ih && x0 as usize + 4 <= iw;
            if inside {
                let at = (y0 as usize * iw + x0 as usize) * c_in;
                // SAFETY: the 4x4 block lies inside the image (checked), so every pixel
                // `at + a * iw * c_in + b * c_in` and its `c_in` channels are in `image`;
                // position `ξ` of this tile's channels, at most
                // `ξ * plane + start + channel_offset(c_in - 1, strip)`, is inside its
                // plane, inside `v` (checked above); `tile_fn` needs AVX2, which the
                // caller that passed it has.
                unsafe {
                    tile_fn(
                        image[at..].as_ptr(),
                        iw * c_in,
                        c_in,
                        v[start..].as_mut_ptr(),
                        plane,
                        strip,
                    );
                }
            } else {
                // An edge tile: its block copied into one with zeros outside the
                // image, then the same transform.
                let block = &mut edge_block[..POSITIONS * c_in];
                for (a, rows) in block.chunks_exact_mut(4 * c_in).enumerate() {
                    let yy = y0 + a as isize;
                    for (b, cell) in rows.chunks_exact_mut(c_in).enumerate() {
                        let xx = x0 + b as isize;
                        if (0..ih as isize).contains(&yy) && (0..iw as isize).contains(&xx) {
                            let at = (yy as usize * iw + xx as usize) * c_in;
                            cell.copy_from_slice(&image[at..at + c_in]);
                        } else {
                            cell.fill(0.0);
                        }
                    }
                }
                // SAFETY: the block holds 16 pixels of `c_in` channels, `4 * c_in`
                // values a row; the writes are as above; `tile_fn` needs AVX2, which the
                // caller that passed it has.
                unsafe {
                    tile_fn(
                        block.as_ptr(),
                        4 * c_in,
                        c_in,
                        v[start..].as_mut_ptr(),
                        plane,
                        strip,
                    );
                }
            }
            continue;
        }
        for c0 in (0..c_in).step_by(LANES) {
            let len = LANES.min(c_in - c0);
            let row = |a: usize| input_row(image, (ih, iw, c_in), y0 + a as isize, x0, c0, len);
            // Row `a` of `Bᵀ d`, transformed along the row, is row `a` of `V`.
            let base = |a: usize| a * 4 * plane + start + channel_offset(c0, strip);
            // The rows of `Bᵀ d` one at a time, so that few values are live at once.
            let d2 = row(2);
            emit_row(v, sub_row(row(0), d2), base(0), plane, len);
            let d1 = row(1);
            emit_row(v, add_row(d1, d2), base(1), plane, len);
            emit_row(v, sub_row(d2, d1), base(2), plane, len);
            emit_row(v, sub_row(d1, row(3)), base(3), plane, len);
        }
    }
}

/// Channels `c0..c0 + len` of the four pixels from `x0` on in row `yy` of `image`:
/// a row of a tile's input block, zero outside the image.
#[inline(always)]
fn input_row(
    image: &[f32],
    (ih, iw, c_in): (usize, usize, usize),
    yy: isize,
    x0: isize,
    c0: usize,
    len: usize,
) -> Row {
    let mut r = [[0.0; LANES]; 4];
    if (0..ih as isize).contains(&yy) {
        for (b, cell) in r.iter_mut().enumerate() {
            let xx = x0 + b as isize;
            if (0..iw as isize).contains(&xx) {
                *cell = load(image, (yy as usize * iw + xx as usize) * c_in + c0, len);
            }
        }
    }
    r
}

/// Row `t` of `Bᵀ d` transformed along the row, stored as positions `base`,
/// `base + plane`, ... of `v`.
#[inline(always)]
fn emit_row(v: &mut [f32], t: Row, base: usize, plane: usize, len: usize) {
    for (b, val) in bt(t).iter().enumerate() {
        store(v, base + b * plane, len, val);
    }
}

/// Four consecutive positions of a tile's products from `base`, `plane` apart.
#[inline(always)]
fn product_row(m: &[f32], base: usize, plane: usize, len: usize) -> Row {
    let mut r = [[0.0; LANES]; 4];
    for (b, cell) in r.iter_mut().enumerate() {
        *cell = load(m, base + b * plane, len);
    }
    r
}

/// `Y = Aᵀ M A` for tiles `first..first + count`, with
/// `Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`, then the epilogue, into the output pixels
/// that exist (an odd edge drops half a tile).
///
/// # Safety
/// `y` must hold every output pixel of `p`, and those of these tiles must not be
/// accessed by anyone else during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn transform_output(
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
        // SAFETY: `Isa::Avx2Fma` is only chosen where the CPU has AVX2 and FMA; the
        // rest is the caller's contract.
        Isa::Avx2Fma => unsafe {
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

/// A whole-vector transform of one tile whose four pixels exist, for every channel
/// (see [`avx2::output_tile`]).
type OutputTile = unsafe fn(*const f32, usize, *mut f32, usize, usize, *const f32, bool);

/// The two outputs of `Aᵀ` applied to four inputs.
#[inline(always)]
fn at(m: [[f32; LANES]; 4]) -> [[f32; LANES]; 2] {
    [add(add(m[0], m[1]), m[2]), sub(sub(m[1], m[2]), m[3])]
}

/// # Safety
/// As [`transform_output`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn transform_output_with(
    p: &Conv2dParams,
    plan: &Tiles,
    m: &[f32],
    first: usize,
    count: usize,
    epilogue: &Epilogue<'_>,
    y: SendPtr<f32>,
    interior: Option<OutputTile>,
) {
    let (oh, ow, c_out) = (us(p.out_h), us(p.out_w), us(p.out_c));
    let per_image = plan.tiles_h * plan.tiles_w;
    let plane = count * c_out;
    assert!(
        m.len() >= POSITIONS * plane,
        "winograd: short products buffer"
    );
    if let Some(bias) = epilogue.bias {
        assert!(bias.len() >= c_out, "winograd: short bias");
    }
    // The bias and ReLU go into the store; other activations over each pixel after.
    let (relu, after) = match epilogue.activation {
        ActivationKind::Linear => (false, false),
        ActivationKind::Relu => (true, false),
        _ => (false, true),
    };
    for i in 0..count {
        let tile = first + i;
        let (n, r) = (tile / per_image, tile % per_image);
        let (ty, tx) = (r / plan.tiles_w, r % plan.tiles_w);
        // Where the tile's pixels start in `y`, for those that exist.
        let pixel = |a: usize, b: usize| {
            let (oy, ox) = (2 * ty + a, 2 * tx + b);
            (oy < oh && ox < ow).then_some(((n * oh + oy) * ow + ox) * c_out)
        };
        let pixels = [[pixel(0, 0), pixel(0, 1)], [pixel(1, 0), pixel(1, 1)]];
        if let Some(tile_fn) = interior
            && !after
            && c_out.is_multiple_of(LANES)
        {
            let bias = epilogue.bias.map_or(std::ptr::null(), <[f32]>::as_ptr);
            let whole = 2 * ty + 2 <= oh && 2 * tx + 2 <= ow;
            if whole {
                // SAFETY: the tile's four pixels exist (checked), so their `c_out`
                // channels lie inside `y`, and this task alone writes them (the
                // caller's contract); position `ξ` of the tile, up to
                // `15 * plane + i * c_out + c_out`, lies inside `m`, and a bias holds
                // `c_out` values (both checked above); `tile_fn` needs AVX2, which the
                // caller that passed it has.
                unsafe {
                    tile_fn(
                        m[i * c_out..].as_ptr(),
                        plane,
                        y.get().add(((n * oh + 2 * ty) * ow + 2 * tx) * c_out),
                        ow * c_out,
                        c_out,
                        bias,
                        relu,
                    );
                }
            } else {
                // Half a tile: eight channels at a time into a 2x2 block, of which the
                // pixels that exist are stored.
                for k0 in (0..c_out).step_by(LANES) {
                    let mut block = [[0.0f32; LANES]; 4];
                    // SAFETY: position `ξ` of these channels, up to
                    // `15 * plane + i * c_out + k0 + LANES`, lies inside `m`, and a bias
                    // holds `c_out` values (both checked above); the block holds four
                    // pixels of `LANES` channels, two a row; `tile_fn` needs AVX2, which
                    // the caller that passed it has.
                    unsafe {
                        tile_fn(
                            m[i * c_out + k0..].as_ptr(),
                            plane,
                            block.as_mut_ptr().cast(),
                            2 * LANES,
                            LANES,
                            if bias.is_null() { bias } else { bias.add(k0) },
                            relu,
                        );
                    }
                    for (val, start) in block.iter().zip(pixels.iter().flatten()) {
                        let Some(start) = start else { continue };
                        // SAFETY: the pixel exists, so channels `k0..k0 + LANES` of it
                        // lie inside `y`, and this task alone writes them (the caller's
                        // contract).
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                val.as_ptr(),
                                y.get().add(start + k0),
                                LANES,
                            );
                        }
                    }
                }
            }
            continue;
        }
        for k0 in (0..c_out).step_by(LANES) {
            let len = LANES.min(c_out - k0);
            let row = |a: usize| product_row(m, (a * 4 * count + i) * c_out + k0, plane, len);
            // The two rows of `Aᵀ M`: `m0 + m1 + m2` and `m1 - m2 - m3`.
            let (m1, m2) = (row(1), row(2));
            let rows = [
                add_row(row(0), add_row(m1, m2)),
                sub_row(sub_row(m1, m2), row(3)),
            ];
            let bias = match epilogue.bias {
                Some(bias) => load(bias, k0, len),
                None => [0.0; LANES],
            };
            for (r, starts) in rows.into_iter().zip(pixels) {
                for (val, start) in at(r).into_iter().zip(starts) {
                    let Some(start) = start else { continue };
                    let mut val = add(val, bias);
                    if relu {
                        // `x < 0` is false for NaN, which therefore propagates.
                        for x in &mut val {
                            *x = if *x < 0.0 { 0.0 } else { *x };
                        }
                    }
                    // SAFETY: the pixel exists, so channels `k0..k0 + len` of it lie
                    // inside `y`, and this task alone writes them (the caller's
                    // contract).
                    unsafe {
                        let dst = y.get().add(start + k0);
                        if len == LANES {
                            std::ptr::copy_nonoverlapping(val.as_ptr(), dst, LANES);
                        } else {
                            std::ptr::copy_nonoverlapping(val.as_ptr(), dst, len);
                        }
                    }
                }
            }
        }
        if after {
            let activation = Epilogue {
                bias: None,
                ..*epilogue
            };
            for start in pixels.into_iter().flatten().flatten() {
                // SAFETY: as for the stores above; the row is dropped before the next.
                let row = unsafe { std::slice::from_raw_parts_mut(y.get().add(start), c_out) };
                activation.apply(row, 0);
            }
        }
    }
}

/// The transforms of whole tiles with AVX2 intrinsics: eight channels per vector,
/// straight-line code that keeps the block in registers.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_setzero_ps, _mm256_storeu_ps,
        _mm256_sub_ps,
    };

    use super::{LANES, channel_offset};

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
}
