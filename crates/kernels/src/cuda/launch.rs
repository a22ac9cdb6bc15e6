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

/// Launches a group kernel (one tensor a block row, `blockIdx.y`) for every run of up
/// to `capacity` of `items`: `add(group, i, item)` puts `item` at place `i` of a fresh
/// `group` and returns its length (zero to leave it out, keeping place `i` free), and
/// `launch(group, config)` launches with a grid of `count` rows wide enough for the
/// longest item.
pub(crate) fn in_groups<I, G>(
    items: impl IntoIterator<Item = I>,
    capacity: usize,
    mut fresh: impl FnMut() -> G,
    mut add: impl FnMut(&mut G, usize, I) -> crate::Result<usize>,
    mut launch: impl FnMut(&G, u32, LaunchConfig) -> crate::Result<()>,
) -> crate::Result<()> {
    let mut items = items.into_iter();
    loop {
        let mut group = fresh();
        let (mut taken, mut count, mut longest) = (0, 0, 0);
        for item in items.by_ref().take(capacity) {
            taken += 1;
            let len = add(&mut group, count, item)?;
            if len > 0 {
                count += 1;
                longest = longest.max(len);
            }
        }
        if taken == 0 {
            return Ok(());
        }
        if count > 0 {
            let rows = elementwise(longest);
            let cfg = LaunchConfig {
                grid_dim: (rows.grid_dim.0, count as u32, 1),
                ..rows
            };
            launch(&group, count as u32, cfg)?;
        }
    }
}
