//! Layer normalisation over the last axis: each row of `cols` values to zero mean
//! and unit variance, then `gamma * xhat + beta` per column.
//!
//! The forward pass keeps each row's mean and reciprocal standard deviation
//! (`stats`: `2 * rows` values, means first), so the backward pass reads the input
//! and those rather than the normalised values:
//!
//! ```text
//! xhat = (x - mean) * rstd,        g = dy * gamma
//! dx   = rstd * (g - mean(g) - xhat * mean(g * xhat))
//! dgamma += sum over rows of dy * xhat,   dbeta += sum over rows of dy
//! ```

pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use super::u32_of;
use crate::Result;
use crate::storage::Storage;

/// `rows` rows of `cols` values.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormParams {
    /// Rows (samples times steps).
    pub rows: u32,
    /// Values a row: the normalised axis.
    pub cols: u32,
    /// Added to the variance before its square root.
    pub epsilon: f32,
    /// In the backward pass, add to the input's gradient instead of overwriting it.
    pub accumulate: u32,
}

impl LayerNormParams {
    /// The parameters with PyTorch's epsilon (1e-5), or an error if a size does not
    /// fit in 32 bits.
    pub fn new(rows: usize, cols: usize) -> Result<Self> {
        const OP: &str = "layer_norm";
        Ok(Self {
            rows: u32_of(OP, "rows", rows)?,
            cols: u32_of(OP, "cols", cols)?,
            epsilon: 1e-5,
            accumulate: 0,
        })
    }

    /// Values in all.
    pub fn len(&self) -> usize {
        self.rows as usize * self.cols as usize
    }

    /// Whether there is nothing to normalise.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The layer normalisation op.
///
/// ```
/// use kiln_kernels::ops::layer_norm::{LayerNormKernel, LayerNormParams};
/// use kiln_kernels::{Cpu, Storage};
///
/// let cpu = Cpu::with_threads(1)?;
/// let p = LayerNormParams { epsilon: 0.0, ..LayerNormParams::new(1, 2)? };
/// let x = cpu.alloc_from(&[1.0, 3.0])?;
/// let (gamma, beta) = (cpu.alloc_from(&[1.0, 2.0])?, cpu.alloc_from(&[0.0, 0.5])?);
/// let (mut y, mut stats) = (cpu.alloc(2)?, cpu.alloc(2)?);
/// cpu.layer_norm_fwd(&p, &x, &gamma, &beta, &mut y, &mut stats)?;
/// assert_eq!(cpu.to_host(&y, 2)?, [-1.0, 2.5]);
/// assert_eq!(cpu.to_host(&stats, 2)?, [2.0, 1.0]);
/// # Ok::<(), kiln_kernels::Error>(())
/// ```
pub trait LayerNormKernel: Storage {
    /// `y = gamma * (x - mean) * rstd + beta` for each row; each row's mean and
    /// `rstd = 1 / sqrt(var + epsilon)` (the biased variance) into `stats`.
    fn layer_norm_fwd(
        &self,
        p: &LayerNormParams,
        x: &Self::Buffer,
        gamma: &Self::Buffer,
        beta: &Self::Buffer,
        y: &mut Self::Buffer,
        stats: &mut Self::Buffer,
    ) -> Result<()>;

    /// The input's gradient into `dx` (written, or added to with `accumulate`) when
    /// given; `dgamma` and `dbeta` are added to.
    #[allow(clippy::too_many_arguments)]
    fn layer_norm_bwd(
        &self,
        p: &LayerNormParams,
        x: &Self::Buffer,
        gamma: &Self::Buffer,
        stats: &Self::Buffer,
        dy: &Self::Buffer,
        dx: Option<&mut Self::Buffer>,
        dgamma: &mut Self::Buffer,
        dbeta: &mut Self::Buffer,
    ) -> Result<()>;
}

#[cfg(test)]
mod tests;
