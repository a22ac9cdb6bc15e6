//! What every op's launch code shares: grid sizes and error mapping.

use cudarc::driver::{DriverError, LaunchConfig};

use crate::Error;

/// Threads a block for element-wise kernels.
pub(crate) const BLOCK: u32 = 256;

/// Blocks at most for grid-stride kernels: enough to fill any current GPU.
const MAX_BLOCKS: usize = 4096;

/// A one-dimensional grid for a grid-stride loop over `n` elements.
pub(crate) fn elementwise(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, MAX_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block of `threads` threads per row, for `rows` rows (grid-stride over rows).
pub(crate) fn per_row(rows: usize, threads: u32) -> LaunchConfig {
    let blocks = rows.clamp(1, 65_535) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A driver error of `op` as the crate's error.
pub(crate) fn driver_err(op: &'static str, e: DriverError) -> Error {
    Error::CudaDriver {
        op,
        detail: format!("{e:?}"),
    }
}
