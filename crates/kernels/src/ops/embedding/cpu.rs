//! The embedding lookup on the CPU.

use super::{EmbeddingKernel, EmbeddingParams};
use crate::error::check_len;
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Error, Result};

/// The row of each id, or the error that names the first one that is not an integer
/// below the vocabulary.
pub(crate) fn token_row(op: &'static str, p: &EmbeddingParams, i: usize, id: f32) -> Result<usize> {
    let vocabulary = us(p.vocabulary);
    if id >= 0.0 && id.fract() == 0.0 && (id as usize) < vocabulary {
        return Ok(id as usize);
    }
    let time = us(p.time).max(1);
    Err(Error::InvalidToken {
        op,
        row: i / time,
        position: i % time,
        value: id,
        vocabulary,
    })
}

fn check(
    op: &'static str,
    p: &EmbeddingParams,
    ids: &[f32],
    table: &[f32],
    rows: &[f32],
) -> Result<()> {
    let (n, width) = (p.tokens(), us(p.width));
    check_len(op, "ids", n, ids.len())?;
    check_len(op, "table", us(p.vocabulary) * width, table.len())?;
    check_len(op, "rows", n * width, rows.len())?;
    // Every id first: a bad one fails the call before anything is written.
    for (i, &id) in ids[..n].iter().enumerate() {
        token_row(op, p, i, id)?;
    }
    Ok(())
}

impl EmbeddingKernel for Cpu {
    fn embedding_fwd(
        &self,
        p: &EmbeddingParams,
        ids: &CpuBuffer,
        table: &CpuBuffer,
        y: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "embedding_fwd";
        let (ids, table) = (ids.as_slice(), table.as_slice());
        check(OP, p, ids, table, y.as_slice())?;
        let width = us(p.width);
        let y = &mut y.as_mut_slice()[..p.tokens() * width];
        for (row, &id) in y.chunks_exact_mut(width.max(1)).zip(ids) {
            let r = id as usize * width;
            row.copy_from_slice(&table[r..r + width]);
        }
        Ok(())
    }

    fn embedding_bwd(
        &self,
        p: &EmbeddingParams,
        ids: &CpuBuffer,
        dy: &CpuBuffer,
        dtable: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "embedding_bwd";
        let (ids, dy) = (ids.as_slice(), dy.as_slice());
        check(OP, p, ids, dtable.as_slice(), dy)?;
        let width = us(p.width);
        let dtable = dtable.as_mut_slice();
        for (g, &id) in dy[..p.tokens() * width].chunks_exact(width.max(1)).zip(ids) {
            let r = id as usize * width;
            for (d, v) in dtable[r..r + width].iter_mut().zip(g) {
                *d += v;
            }
        }
        Ok(())
    }
}
