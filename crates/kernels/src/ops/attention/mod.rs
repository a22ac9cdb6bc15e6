//! Scaled dot-product attention over the heads of a packed query/key/value
//! projection, fused: no more than one block of the attention matrix exists at a
//! time (the FlashAttention idea, Dao et al., 2022).
//!
//! The input is the `[batch, time, 3 * width]` output of one projection, each row
//! the queries, keys and values of a step, heads side by side in each
//! (`width = heads * head_dim`); the output is `[batch, time, width]`, the heads'
//! outputs side by side, ready for the output projection. For each head:
//!
//! ```text
//! o = softmax(q kᵀ / sqrt(head_dim) + mask) v
//! ```
//!
//! The forward pass walks the keys in blocks and keeps, for each query row, a
//! running maximum and sum (an online softmax), rescaling the partial output as the
//! maximum grows; it keeps each row's log-sum-exp (`lse`: `[batch, heads, time]`).
//! The backward pass recomputes each block's probabilities from the saved `lse`
//! (`p = exp(s - lse)`), with `delta = rowsum(do * o)`:
//!
//! ```text
//! dv += pᵀ do,   dp = do vᵀ,   ds = p * (dp - delta) / sqrt(head_dim),
//! dq += ds k,    dk += dsᵀ q
//! ```
//!
//! So memory grows with the sequence, never with its square. A causal mask skips
//! the blocks above the diagonal. The plain computation (the whole matrix, then a
//! softmax) is the tests' oracle.

pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use super::u32_of;
use crate::Result;
use crate::storage::Storage;

/// `batch` sequences of `time` steps, `heads` heads of `head_dim` values.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionParams {
    /// Sequences.
    pub batch: u32,
    /// Steps a sequence (queries and keys alike: self-attention).
    pub time: u32,
    /// Heads.
    pub heads: u32,
    /// Values a head's query, key and value.
    pub head_dim: u32,
    /// 1: each step attends only to itself and the steps before it.
    pub causal: u32,
}

impl AttentionParams {
    /// The parameters, or an error if a size does not fit in 32 bits.
    pub fn new(batch: usize, time: usize, heads: usize, head_dim: usize, causal: bool) -> Result<Self> {
        const OP: &str = "attention";
        Ok(Self {
            batch: u32_of(OP, "batch", batch)?,
            time: u32_of(OP, "time", time)?,
            heads: u32_of(OP, "heads", heads)?,
            head_dim: u32_of(OP, "head_dim", head_dim)?,
            causal: u32::from(causal),
        })
    }

    /// The model width: `heads * head_dim`.
    pub fn width(&self) -> usize {
        self.heads as usize * self.head_dim as usize
    }

    /// Steps in the batch.
    pub fn rows(&self) -> usize {
        self.batch as usize * self.time as usize
    }

    /// Values of the packed projection: `rows * 3 * width`.
    pub fn qkv_len(&self) -> usize {
        self.rows() * 3 * self.width()
    }

    /// Values of the output: `rows * width`.
    pub fn out_len(&self) -> usize {
        self.rows() * self.width()
    }

    /// Query rows over all heads: the length of `lse` and `delta`.
    pub fn stats_len(&self) -> usize {
        self.rows() * self.heads as usize
    }

    /// The softmax's temperature, `1 / sqrt(head_dim)`.
    pub fn scale(&self) -> f32 {
        1.0 / (self.head_dim.max(1) as f32).sqrt()
    }
}

/// The fused attention op.
///
/// ```
/// use kiln_kernels::ops::attention::{AttentionKernel, AttentionParams};
/// use kiln_kernels::{Cpu, Storage};
///
/// // One head of width 1 over two steps, causal: the first step sees only itself.
/// let cpu = Cpu::with_threads(1)?;
/// let p = AttentionParams::new(1, 2, 1, 1, true)?;
/// let qkv = cpu.alloc_from(&[0.0, 0.0, 3.0, 0.0, 0.0, 5.0])?;
/// let (mut o, mut lse) = (cpu.alloc(2)?, cpu.alloc(2)?);
/// cpu.attention_fwd(&p, &qkv, &mut o, &mut lse)?;
/// assert_eq!(cpu.to_host(&o, 2)?, [3.0, 4.0]);
/// # Ok::<(), kiln_kernels::Error>(())
/// ```
pub trait AttentionKernel: Storage {
    /// `o` from the packed `qkv`, and each query row's log-sum-exp into `lse`.
    fn attention_fwd(
        &self,
        p: &AttentionParams,
        qkv: &Self::Buffer,
        o: &mut Self::Buffer,
        lse: &mut Self::Buffer,
    ) -> Result<()>;

    /// The packed projection's gradient (written) from the output's, recomputing the
    /// probabilities from `lse`; `delta` (`stats_len` values) is scratch.
    #[allow(clippy::too_many_arguments)]
    fn attention_bwd(
        &self,
        p: &AttentionParams,
        qkv: &Self::Buffer,
        o: &Self::Buffer,
        lse: &Self::Buffer,
        d_o: &Self::Buffer,
        delta: &mut Self::Buffer,
        dqkv: &mut Self::Buffer,
    ) -> Result<()>;
}

#[cfg(test)]
mod tests;
