//! Where the SGEMM core of `gemm.cuh` runs, for the matrix product and the
//! convolutions alike: the tiles it is compiled for, the [`Plan`] that picks a tile
//! and the slices of K for a product, and the launch grid that follows.

use cudarc::driver::LaunchConfig;

use crate::storage::Storage;
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

    /// Blocks of this tile a multiprocessor runs at once: 256 threads a block against
    /// the 64K registers a multiprocessor has, at what ptxas gives each thread for
    /// sm_90 (64 in the tiny tile, 85 to 128 in the others).
    pub(crate) fn resident(self) -> usize {
        match self {
            Self::Tiny => 4,
            _ => 2,
        }
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

/// Slices of K shorter than this spend more on adding their tile to the result than
/// on their sum.
const SPLIT_CHUNK_MIN: usize = 128;

/// How a GEMM sums over K: its tile, and `splits` slices of `chunk` along K (a
/// multiple of the core's 16-deep staging; the last may be shorter, none is empty). Slices add
/// their parts into the result atomically when there is more than one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) tile: Tile,
    pub(crate) splits: u32,
    pub(crate) chunk: usize,
}

impl Plan {
    /// One walk over K, in the tile [`Tile::pick`] gives the shape.
    pub(crate) fn whole(rows: usize, cols: usize, k: usize, sms: usize) -> Self {
        Self {
            tile: Tile::pick(rows, cols, 1, sms),
            splits: 1,
            chunk: k,
        }
    }

    /// For a result the product adds to: K in as many slices as make one full wave
    /// of blocks ([`Tile::resident`] on each of `sms` multiprocessors), each at least
    /// `SPLIT_CHUNK_MIN` long. A product of few tiles (a weight gradient, summed over
    /// every pixel of the batch) would otherwise be a handful of blocks, each a long
    /// serial walk over K, and more than a wave would leave a part-empty last one.
    pub(crate) fn split(rows: usize, cols: usize, k: usize, sms: usize) -> Self {
        let whole = Self::whole(rows, cols, k, sms);
        if k == 0 {
            return whole;
        }
        let slices = |tile: Tile| {
            let wave = tile.resident() * sms;
            (wave / tile.blocks(rows, cols)).clamp(1, k.div_ceil(SPLIT_CHUNK_MIN).min(65_535))
        };
        // The slices can make a larger tile worth its fewer blocks: size them for it.
        let tile = Tile::pick(rows, cols, slices(whole.tile), sms);
        let chunk = k.div_ceil(slices(tile)).next_multiple_of(16);
        Self {
            tile,
            splits: k.div_ceil(chunk) as u32,
            chunk,
        }
    }

    /// For a result the product overwrites: split as [`Plan::split`] only where the
    /// tiles leave the wave short (small batches), since the slices then need the
    /// result zeroed first.
    pub(crate) fn split_if_short(rows: usize, cols: usize, k: usize, sms: usize) -> Self {
        let whole = Self::whole(rows, cols, k, sms);
        if whole.tile.blocks(rows, cols) >= whole.tile.resident() * sms {
            whole
        } else {
            Self::split(rows, cols, k, sms)
        }
    }

    /// Zeroes the first `len` values of `out` where this plan's slices will add into
    /// it: a result the product overwrites must start from zero once K is split.
    pub(crate) fn zero_if_split(
        &self,
        cuda: &Cuda,
        out: &mut CudaBuffer,
        len: usize,
    ) -> Result<()> {
        if self.splits > 1 {
            cuda.fill(out, len, 0.0)?;
        }
        Ok(())
    }

    /// The tile and the grid for a `rows x cols` result: row tiles along x, column
    /// tiles along y (at most 65,535 of them), the slices of K along z.
    pub(crate) fn grid(
        self,
        op: &'static str,
        rows: usize,
        cols: usize,
    ) -> Result<(Tile, LaunchConfig)> {
        #[cfg(test)]
        let tile = TILE_FOR_TESTS
            .with(std::cell::Cell::get)
            .unwrap_or(self.tile);
        #[cfg(not(test))]
        let tile = self.tile;
        let (tile_rows, tile_cols) = tile.size();
        let (row_tiles, col_tiles) = (rows.div_ceil(tile_rows), cols.div_ceil(tile_cols));
        if col_tiles > 65_535 || row_tiles > i32::MAX as usize {
            return Err(Error::InvalidParams {
                op,
                detail: format!("a {rows} x {cols} product exceeds what one launch covers"),
            });
        }
        let cfg = LaunchConfig {
            grid_dim: (row_tiles as u32, col_tiles as u32, self.splits),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        Ok((tile, cfg))
    }
}

#[cfg(test)]
thread_local! {
    /// The tile every GEMM this thread launches uses instead of its plan's, for the
    /// tests that run each kernel in each tile.
    static TILE_FOR_TESTS: std::cell::Cell<Option<Tile>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with every GEMM this thread launches in each tile in turn, then gives the
/// choice back.
#[cfg(test)]
pub(crate) fn in_every_tile(mut f: impl FnMut(Tile)) {
    for tile in Tile::ALL {
        TILE_FOR_TESTS.with(|t| t.set(Some(tile)));
        f(tile);
    }
    TILE_FOR_TESTS.with(|t| t.set(None));
}

#[cfg(test)]
mod tests {
    use super::{Plan, SPLIT_CHUNK_MIN, Tile};
    use crate::ops::matmul::cuda::FWD;

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
    fn sums_split_into_one_wave() {
        let sms = 132;
        // (rows, cols, k): the seed CNN's weight gradients at batch 64 and 1024 (k the
        // output pixels), its dense layers' at 1024 and 64, a long sum over one tile,
        // sums shorter than a slice, none at all.
        for (rows, cols, k) in [
            (27, 32, 57_600),
            (288, 64, 10_816),
            (576, 128, 1_024),
            (27, 32, 921_600),
            (288, 64, 173_056),
            (576, 128, 16_384),
            (512, 128, 1_024),
            (128, 10, 64),
            (32, 32, 200_000_000),
            (64, 64, 100),
            (64, 64, 1),
            (64, 64, 0),
        ] {
            let plan = Plan::split(rows, cols, k, sms);
            let (splits, chunk) = (plan.splits as usize, plan.chunk);
            let blocks = plan.tile.blocks(rows, cols) * splits;
            let what = format!("{rows} x {cols} x {k}: {plan:?}");
            assert!(chunk % 16 == 0 || splits == 1, "{what}");
            assert!(
                splits * chunk >= k && (1..=65_535).contains(&splits),
                "{what}"
            );
            assert!(k == 0 || (splits - 1) * chunk < k, "{what}: an empty slice");
            assert!(
                splits == 1 || chunk >= SPLIT_CHUNK_MIN,
                "{what}: slices too short"
            );
            assert!(
                splits == 1 || blocks <= plan.tile.resident() * sms,
                "{what}: past one wave"
            );
        }
        // Batch 1024: one full wave. The first convolution (27 x 32, one tiny tile,
        // four a multiprocessor) in 524 slices; the second in wide tiles, which its
        // 88 slices make worth their fewer blocks (264 of them, two a multiprocessor).
        let first = Plan::split(27, 32, 921_600, sms);
        assert_eq!(
            (first.tile, first.splits, first.chunk),
            (Tile::Tiny, 524, 1760)
        );
        let second = Plan::split(288, 64, 173_056, sms);
        assert_eq!((second.tile, second.splits), (Tile::Wide, 88));
        // Batch 64: the third's 1,024 pixels cannot fill the wave: 8 slices of 128.
        let third = Plan::split(576, 128, 1_024, sms);
        assert_eq!(
            (third.tile, third.splits, third.chunk),
            (Tile::Small, 8, 128)
        );
        // A result to overwrite splits only when its tiles leave the wave short: the
        // dense layer at batch 64 (2 tiles) does, 4096^2 (1,024 tiles) does not.
        assert_eq!(Plan::split_if_short(64, 128, 512, sms).splits, 4);
        assert_eq!(Plan::split_if_short(4096, 4096, 4096, sms).splits, 1);
        assert_eq!(Plan::split_if_short(1024, 1024, 1024, sms).splits, 1);
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
