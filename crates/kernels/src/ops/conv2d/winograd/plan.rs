//! Which convolutions go through Winograd's transform, and how their tiles are cut
//! into blocks (pool tasks): a block's transforms and products are sized to stay in
//! L2 beside the transformed kernel, and the gradients' blocks hold whole images.

use super::POSITIONS;
use crate::cpu::gemm::{PACKED_STRIP, packed_len};
use crate::ops::conv2d::Conv2dParams;
use crate::ops::us;

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

/// Whether the passes of `p` go through Winograd's transform: a 3x3, stride-1
/// kernel between enough channels, and not too many pairs of them.
pub(in crate::ops::conv2d) fn applies(p: &Conv2dParams) -> bool {
    p.kernel_h == 3
        && p.kernel_w == 3
        && p.stride_h == 1
        && p.stride_w == 1
        && p.dilation_h == 1
        && us(p.in_c) >= MIN_CHANNELS
        && us(p.out_c) >= MIN_CHANNELS
        && us(p.in_c) * us(p.out_c) <= MAX_CHANNEL_PAIRS
}

/// How the tiles of one convolution are cut into blocks (pool tasks).
#[derive(Clone, Copy, Debug)]
pub(super) struct Tiles {
    pub(super) tiles_h: usize,
    pub(super) tiles_w: usize,
    /// Tiles over the batch.
    pub(super) tiles: usize,
    /// Tiles per block.
    pub(super) block: usize,
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
pub(super) struct Plan {
    pub(super) tiles: Tiles,
    /// The transformed kernel: 16 packed `c_in x c_out` operands.
    pub(super) u_len: usize,
    /// Per worker: a block's transformed input, `16 x block x c_in`.
    pub(super) v_len: usize,
    /// Per worker: a block's products, `16 x block x c_out`.
    pub(super) m_len: usize,
}

pub(super) fn plan(p: &Conv2dParams) -> Plan {
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
pub(in crate::ops::conv2d) fn workspace_len(p: &Conv2dParams, threads: usize) -> usize {
    let plan = plan(p);
    plan.u_len + threads * (plan.v_len + plan.m_len)
}

/// The gradients' tiles and buffers.
#[derive(Clone, Copy, Debug)]
pub(super) struct GradientPlan {
    /// Blocks of whole images: the input gradient's blocks of different tiles
    /// overlap, so that a task must own every tile of its images.
    pub(super) tiles: Tiles,
    /// Per task: a block's transformed input, packed: `16 x block x c_in` (and the
    /// strips' padding); then the gradient of that transform, `16 x block x c_in`.
    pub(super) v_len: usize,
    /// Per task: a block's transformed output gradient, `16 x block x c_out`.
    pub(super) z_len: usize,
    /// Per task: the running sum of `dU[ξ]ᵀ`, `16 x c_out x c_in`.
    pub(super) sum_len: usize,
    /// Once: the transposed transformed kernel for the input gradient, 16 packed
    /// `c_out x c_in` operands.
    pub(super) u_len: usize,
}

pub(super) fn gradient_plan(p: &Conv2dParams) -> GradientPlan {
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

/// Scratch [`gradients`](super::gradients) needs on `threads` threads.
pub(in crate::ops::conv2d) fn gradients_workspace_len(p: &Conv2dParams, threads: usize) -> usize {
    let plan = gradient_plan(p);
    plan.u_len + threads * (plan.v_len + plan.z_len + plan.sum_len)
}
