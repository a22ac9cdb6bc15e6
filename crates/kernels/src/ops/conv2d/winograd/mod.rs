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
//!
//! The parts, one file each:
//!
//! - `plan`: which convolutions take the transform, how their tiles are cut into
//!   blocks (pool tasks) and the scratch the blocks need;
//! - `drivers`: the forward pass and the gradients, block by block on the pool;
//! - `transforms`: the kernel's transform, and the four transforms of a block of
//!   tiles (the input's, the products', the output gradient's and the input
//!   gradient's), each choosing between the AVX2 and the portable code;
//! - `portable`: those four in plain Rust, eight channels at a time, with a slot for
//!   an AVX2 transform of whole tiles;
//! - `avx2`: the transforms of whole tiles with AVX2 intrinsics.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod drivers;
mod plan;
mod portable;
mod transforms;

use crate::cpu::gemm::PACKED_STRIP;
pub(super) use drivers::{forward, gradients};
pub(super) use plan::{applies, gradients_workspace_len, workspace_len};

/// Transform positions: a 4x4 input block.
const POSITIONS: usize = 16;

/// Channels transformed together: one AVX vector.
const LANES: usize = 8;

// A vector of channels never straddles two strips of a packed operand.
const _: () = assert!(PACKED_STRIP.is_multiple_of(LANES));
