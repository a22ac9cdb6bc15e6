//! The matrix product on the GPU: launch code for `matmul.cu` (on the SGEMM core of
//! `gemm.cuh`, which the convolution shares), and the choice of tile both make.

use cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};

use super::{MatmulKernel, MatmulParams};
use crate::backend::Storage;
use crate::cuda::launch::driver_err;
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::ops::us;
use crate::{Cuda, CudaBuffer, Error, Result};

/// The names of a GEMM kernel compiled once for each tile, in [`Tile`]'s order
/// (`GEMM_TILES` in gemm.cuh): `tile_kernels!("matmul_fwd_f32")`.
macro_rules! tile_kernels {
    ($name:literal) => {
        [
            concat!($name, "_128x128"),
            concat!($name, "_128x64"),
            concat!($name, "_64x64"),
            concat!($name, "_128x32"),
            concat!($name, "_32x32"),
        ]
    };
}
pub(crate) use tile_kernels;

/// The product, one kernel a tile.
pub(crate) const FWD: [&str; TILES] = tile_kernels!("matmul_fwd_f32");

/// The matrix-product kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "matmul",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("gemm.cuh"),
        include_str!("matmul.cu")
    ),
    kernels: &FWD,
    fmad: true,
};

/// Tiles each GEMM kernel is compiled for.
pub(crate) const TILES: usize = 5;

/// Threads a block (`GEMM_THREADS` in gemm.cuh).
const THREADS: u32 = 256;

/// The tile of C a block computes: each GEMM kernel is compiled for every one
/// (`GEMM_TILES` in gemm.cuh, same order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tile {
    /// 128 x 128, 8 x 8 values a thread: the fewest loads per multiply-add.
    Large,
    /// 128 x 64, 8 x 4 a thread.
    Wide,
    /// 64 x 64, 4 x 4 a thread.
    Small,
    /// 128 x 32, 4 x 4 a thread: products with few columns (a convolution's filters).
    Narrow,
    /// 32 x 32, 2 x 2 a thread: products small both ways (the weight gradient of a
    /// first convolution, 27 taps x 32 filters, summed over every pixel).
    Tiny,
}

impl Tile {
    /// Every tile, in the kernels' order.
    #[cfg(test)]
    pub(crate) const ALL: [Self; TILES] = [
        Self::Large,
        Self::Wide,
        Self::Small,
        Self::Narrow,
        Self::Tiny,
    ];

    /// Rows and columns of the tile.
    pub(crate) fn size(self) -> (usize, usize) {
        match self {
            Self::Large => (128, 128),
            Self::Wide => (128, 64),
            Self::Small => (64, 64),
            Self::Narrow => (128, 32),
            Self::Tiny => (32, 32),
        }
    }

    /// The kernel of `names` (one a tile, in this enum's order) for this tile.
    pub(crate) fn kernel(self, names: &[&'static str; TILES]) -> &'static str {
        names[self as usize]
    }

    /// Blocks a `rows x cols` result takes in this tile, for each slice of K.
    pub(crate) fn blocks(self, rows: usize, cols: usize) -> usize {
        let (r, c) = self.size();
        rows.div_ceil(r) * cols.div_ceil(c)
    }

    /// The tile for a `rows x cols` product on a GPU of `sms` multiprocessors, with
    /// `splits` slices of K: the largest that still gives every multiprocessor a
    /// block, and no wider (or taller) than C (a 32-column C in 128-column tiles
    /// would waste three quarters of the arithmetic).
    pub(crate) fn pick(rows: usize, cols: usize, splits: usize, sms: usize) -> Self {
        let enough = |t: Self| t.blocks(rows, cols) * splits >= sms;
        if rows <= 32 && cols <= 32 {
            Self::Tiny
        } else if cols <= 32 {
            Self::Narrow
        } else if cols <= 64 {
            if enough(Self::Wide) {
                Self::Wide
            } else {
                Self::Small
            }
        } else if enough(Self::Large) {
            Self::Large
        } else if enough(Self::Wide) {
            Self::Wide
        } else {
            Self::Small
        }
    }
}

// SAFETY: `#[repr(C)]` of three `u32` and three `bool` (one byte each, 0 or 1),
// padded to 16 bytes, matching `struct MatmulParams` in matmul.cu.
unsafe impl DeviceRepr for MatmulParams {}

/// Slices of K shorter than this spend more on adding their tile to C than on their
/// sum.
const SPLIT_CHUNK_MIN: usize = 128;
/// Blocks a split product aims for on each multiprocessor: several, to hide each
/// other's loads.
const SPLIT_BLOCKS_PER_SM: usize = 4;

/// How to split a sum over `k` for a product of `tiles` tiles on `sms`
/// multiprocessors, in slices of at most `max_chunk`: `(splits, chunk)`, each slice
/// `chunk` long (a multiple of the core's 8) but the last, none empty. A product of
/// few tiles (a weight gradient, a dense layer at a small batch) is otherwise a
/// handful of blocks, each a long serial walk over K.
pub(crate) fn split_k(k: usize, tiles: usize, sms: usize, max_chunk: usize) -> (u32, usize) {
    let want = (SPLIT_BLOCKS_PER_SM * sms).div_ceil(tiles.max(1));
    let fewest = k.div_ceil(max_chunk.max(SPLIT_CHUNK_MIN));
    let most = k.div_ceil(SPLIT_CHUNK_MIN).max(fewest);
    // The grid's z holds at most 65,535 slices.
    let splits = want.clamp(fewest, most).clamp(1, 65_535);
    let chunk = k.div_ceil(splits).next_multiple_of(8).max(8);
    (k.div_ceil(chunk).max(1) as u32, chunk)
}

/// The slices of K for a `rows x cols` product whose result overwrites its output:
/// split only where its tiles would leave multiprocessors idle (small batches), since
/// the slices then need the output zeroed first.
pub(crate) fn split_under_a_wave(cuda: &Cuda, rows: usize, cols: usize, k: usize) -> (u32, usize) {
    let sms = cuda.multiprocessors();
    let tiles = Tile::pick(rows, cols, 1, sms).blocks(rows, cols);
    if tiles < sms && k > 0 {
        split_k(k, tiles, sms, usize::MAX)
    } else {
        (1, k)
    }
}

/// The tile and the grid for a `rows x cols` result with `splits` slices of K along
/// z: row tiles along x, column tiles along y (at most 65,535 of them).
pub(crate) fn gemm_grid(
    cuda: &Cuda,
    op: &'static str,
    rows: usize,
    cols: usize,
    splits: u32,
) -> Result<(Tile, LaunchConfig)> {
    let tile = Tile::pick(rows, cols, splits as usize, cuda.multiprocessors());
    #[cfg(test)]
    let tile = cuda
        .inner()
        .tile
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .unwrap_or(tile);
    let (tile_rows, tile_cols) = tile.size();
    let (row_tiles, col_tiles) = (rows.div_ceil(tile_rows), cols.div_ceil(tile_cols));
    if col_tiles > 65_535 || row_tiles > i32::MAX as usize {
        return Err(Error::InvalidParams {
            op,
            detail: format!("a {rows} x {cols} product exceeds what one launch covers"),
        });
    }
    let cfg = LaunchConfig {
        grid_dim: (row_tiles as u32, col_tiles as u32, splits),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    Ok((tile, cfg))
}

impl MatmulKernel for Cuda {
    fn matmul(
        &self,
        p: &MatmulParams,
        a: &CudaBuffer,
        b: &CudaBuffer,
        c: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "matmul";
        let (m, n, k) = (us(p.m), us(p.n), us(p.k));
        check_len(OP, "a", m * k, a.len())?;
        check_len(OP, "b", k * n, b.len())?;
        check_len(OP, "c", m * n, c.len())?;
        if m * n == 0 {
            return Ok(());
        }
        // The slices of a split K add into C: zero it first unless the product adds
        // to it anyway.
        let (splits, chunk) = split_under_a_wave(self, m, n, k);
        if splits > 1 && !p.accumulate {
            self.fill(c, m * n, 0.0)?;
        }
        let (tile, cfg) = gemm_grid(self, OP, m, n, splits)?;
        let f = self.function(&MODULE, tile.kernel(&FWD))?;
        // `k` fits in 32 bits (`MatmulParams` holds it), so `chunk <= k` does too.
        let chunk = chunk as u32;
        let mut args = self.stream().launch_builder(&f);
        args.arg(p)
            .arg(&a.data)
            .arg(&b.data)
            .arg(&mut c.data)
            .arg(&chunk);
        // SAFETY: the kernel reads `a[0..m * k]` and `b[0..k * n]` and writes (or
        // adds to) `c[0..m * n]`; all three lengths are checked above.
        unsafe { args.launch(cfg) }.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }
}

/// Runs `f` with every GEMM of `gpu` in each tile in turn, then gives the choice back.
#[cfg(test)]
pub(crate) fn in_every_tile(gpu: &Cuda, mut f: impl FnMut(Tile)) {
    let set = |tile| {
        *gpu.inner()
            .tile
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tile;
    };
    for tile in Tile::ALL {
        set(Some(tile));
        f(tile);
    }
    set(None);
}

#[cfg(test)]
mod tests {
    use super::{FWD, Tile, split_k};

    #[test]
    fn each_tile_names_its_own_kernel() {
        for tile in Tile::ALL {
            let (rows, cols) = tile.size();
            let name = tile.kernel(&FWD);
            assert!(
                name.ends_with(&format!("_{rows}x{cols}")),
                "{tile:?}: {name}"
            );
            let conv = tile.kernel(&crate::ops::conv2d::cuda::WEIGHT_BWD);
            assert!(
                conv.ends_with(&format!("_{rows}x{cols}")),
                "{tile:?}: {conv}"
            );
        }
    }

    #[test]
    fn sums_split_to_fill_the_gpu() {
        let sms = 132;
        let max = 2048;
        // (k, tiles): the seed CNN's weight gradients at batch 64 and 1024 (k the
        // output pixels), a sum shorter than a slice, one too long for the grid's z,
        // and no sum at all.
        for (k, tiles) in [
            (57_600, 1),
            (10_816, 5),
            (1_024, 18),
            (921_600, 1),
            (173_056, 5),
            (16_384, 18),
            (1, 1),
            (100, 3),
            (200_000_000, 1),
            (0, 1),
        ] {
            let (splits, chunk) = split_k(k, tiles, sms, max);
            let splits = splits as usize;
            assert!(
                chunk % 8 == 0 && (1..=65_535).contains(&splits),
                "{k}: {splits} x {chunk}"
            );
            assert!(
                splits * chunk >= k,
                "{k}: {splits} x {chunk} misses some of K"
            );
            assert!(
                k == 0 || (splits - 1) * chunk < k,
                "{k}: {splits} x {chunk}: an empty slice"
            );
            if k <= 65_535 * max {
                assert!(chunk <= max, "{k}: {chunk}");
            }
        }
        // Batch 64: the first convolution's 57,600 pixels in one tile were 29 slices of
        // 2,048 (29 blocks); now every multiprocessor gets blocks.
        assert!(split_k(57_600, 1, sms, max).0 >= 2 * 132);
        // The third's 1,024 pixels in 18 tiles: 8 slices of 128.
        assert_eq!(split_k(1_024, 18, sms, max), (8, 128));
        // Batch 1024: about four blocks a multiprocessor, slices 1,752 pixels long.
        assert_eq!(split_k(921_600, 1, sms, max), (527, 1752));
        // A dense layer at batch 64 (512 inputs, 2 tiles): 4 slices of 128.
        assert_eq!(split_k(512, 2, sms, usize::MAX), (4, 128));
    }

    #[test]
    fn tiles_follow_the_shape_of_the_product() {
        let sms = 132;
        // 4096^2: 1,024 large tiles.
        assert_eq!(Tile::pick(4096, 4096, 1, sms), Tile::Large);
        // The seed's first convolution at batch 64: 57,600 pixels x 32 filters.
        assert_eq!(Tile::pick(57_600, 32, 1, sms), Tile::Narrow);
        // Its second (64 filters, 13 x 13 outputs): at batch 64, 85 wide tiles would
        // leave SMs idle; at batch 1024 there are rows enough for them.
        assert_eq!(Tile::pick(10_816, 64, 1, sms), Tile::Small);
        assert_eq!(Tile::pick(173_056, 64, 1, sms), Tile::Wide);
        // The dense layer at batch 64: one large tile would leave 131 SMs idle.
        assert_eq!(Tile::pick(64, 128, 1, sms), Tile::Small);
        // Slices of K count as blocks: a weight gradient's 288 rows split 29 ways fill
        // the GPU in small tiles (145 blocks), not in wide ones (87).
        assert_eq!(Tile::pick(288, 64, 29, sms), Tile::Small);
        assert_eq!(Tile::pick(288, 64, 44, sms), Tile::Wide);
        // 1024^2: 64 large or 128 wide tiles leave SMs idle; 256 small ones do not.
        assert_eq!(Tile::pick(1024, 1024, 1, sms), Tile::Small);
        assert_eq!(Tile::pick(2048, 2048, 1, sms), Tile::Large);
        // The first convolution's weight gradient: 27 taps x 32 filters.
        assert_eq!(Tile::pick(27, 32, 450, sms), Tile::Tiny);
        assert_eq!(Tile::pick(64, 10, 1, sms), Tile::Narrow);
    }
}
