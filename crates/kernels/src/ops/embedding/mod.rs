//! The embedding lookup: each token id's row of a table (a gather), and in the
//! backward pass each output gradient row added to its id's row of the table's
//! gradient (a scatter-add).
//!
//! Token ids arrive as `f32` (exact below 2^24). An id that is not an integer below
//! the vocabulary is an error naming its batch row and position
//! ([`Error::InvalidToken`](crate::Error::InvalidToken)); nothing outside the table
//! is ever read.
//!
//! The backward pass touches only the rows of the ids in the batch: its cost is the
//! batch's tokens times the width, whatever the vocabulary.

pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use super::u32_of;
use crate::Result;
use crate::storage::Storage;

/// `batch` sequences of `time` token ids into a table of `vocabulary` rows of `width`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbeddingParams {
    /// Sequences.
    pub batch: u32,
    /// Ids a sequence.
    pub time: u32,
    /// Rows of the table.
    pub vocabulary: u32,
    /// Values a row.
    pub width: u32,
}

impl EmbeddingParams {
    /// The parameters, or an error if a size does not fit in 32 bits.
    pub fn new(batch: usize, time: usize, vocabulary: usize, width: usize) -> Result<Self> {
        const OP: &str = "embedding";
        Ok(Self {
            batch: u32_of(OP, "batch", batch)?,
            time: u32_of(OP, "time", time)?,
            vocabulary: u32_of(OP, "vocabulary", vocabulary)?,
            width: u32_of(OP, "width", width)?,
        })
    }

    /// Ids in all.
    pub fn tokens(&self) -> usize {
        self.batch as usize * self.time as usize
    }
}

/// The embedding op.
///
/// ```
/// use kiln_kernels::ops::embedding::{EmbeddingKernel, EmbeddingParams};
/// use kiln_kernels::{Cpu, Storage};
///
/// let cpu = Cpu::with_threads(1)?;
/// let p = EmbeddingParams::new(1, 3, 2, 2)?;
/// let table = cpu.alloc_from(&[1.0, 2.0, 3.0, 4.0])?;
/// let ids = cpu.alloc_from(&[1.0, 0.0, 1.0])?;
/// let mut y = cpu.alloc(6)?;
/// cpu.embedding_fwd(&p, &ids, &table, &mut y)?;
/// assert_eq!(cpu.to_host(&y, 6)?, [3.0, 4.0, 1.0, 2.0, 3.0, 4.0]);
/// let bad = cpu.alloc_from(&[1.0, 2.0, 0.0])?;
/// assert!(cpu.embedding_fwd(&p, &bad, &table, &mut y).is_err());
/// # Ok::<(), kiln_kernels::Error>(())
/// ```
pub trait EmbeddingKernel: Storage {
    /// `y[i] = table[ids[i]]` for each of the `batch * time` ids.
    fn embedding_fwd(
        &self,
        p: &EmbeddingParams,
        ids: &Self::Buffer,
        table: &Self::Buffer,
        y: &mut Self::Buffer,
    ) -> Result<()>;

    /// `dtable[ids[i]] += dy[i]` for each id, touching no other row.
    fn embedding_bwd(
        &self,
        p: &EmbeddingParams,
        ids: &Self::Buffer,
        dy: &Self::Buffer,
        dtable: &mut Self::Buffer,
    ) -> Result<()>;
}

#[cfg(test)]
mod tests;
