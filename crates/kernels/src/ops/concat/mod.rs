//! Concatenation along the last axis (the channels of NHWC images, or features): the
//! join of parallel branches. Each input is written into its own slice of every row
//! of the output, one call an input; the backward pass gathers the slice back.

pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use super::{InputGrad, u32_of};
use crate::storage::Storage;
use crate::{Error, Result};

/// One input's place in the output: `rows` rows of `width` values that go to columns
/// `offset..offset + width` of rows of `total` values.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcatParams {
    /// Rows: the batch times the positions (`batch * h * w` for images).
    pub rows: u32,
    /// The input's last axis.
    pub width: u32,
    /// The output's last axis: the sum of the inputs' widths.
    pub total: u32,
    /// Where the input starts in the output's last axis.
    pub offset: u32,
}

impl ConcatParams {
    /// An input of `rows x width` at column `offset` of an output of `rows x total`.
    /// Sizes past 32 bits, or an input that does not fit in the output's row, are an
    /// [`Error::InvalidParams`].
    pub fn new(rows: usize, width: usize, total: usize, offset: usize) -> Result<Self> {
        const OP: &str = "concat";
        let p = Self {
            rows: u32_of(OP, "rows", rows)?,
            width: u32_of(OP, "width", width)?,
            total: u32_of(OP, "total", total)?,
            offset: u32_of(OP, "offset", offset)?,
        };
        p.check(OP)?;
        Ok(p)
    }

    /// Refuses an input that does not fit in the output's row.
    pub(crate) fn check(&self, op: &'static str) -> Result<()> {
        if u64::from(self.offset) + u64::from(self.width) <= u64::from(self.total) {
            return Ok(());
        }
        Err(Error::InvalidParams {
            op,
            detail: format!(
                "an input of width {} at offset {} does not fit in rows of {} values",
                self.width, self.offset, self.total
            ),
        })
    }

    /// The input's elements, `rows * width`.
    pub fn input_len(&self) -> usize {
        self.rows as usize * self.width as usize
    }

    /// The output's elements, `rows * total`.
    pub fn output_len(&self) -> usize {
        self.rows as usize * self.total as usize
    }
}

/// The concatenation op.
///
/// ```
/// use kiln_kernels::ops::concat::{ConcatKernel, ConcatParams};
/// use kiln_kernels::{Cpu, Storage};
///
/// // Two rows of [a0 a1 | b0]: an input of width 2 and one of width 1.
/// let cpu = Cpu::with_threads(1)?;
/// let a = cpu.alloc_from(&[1.0, 2.0, 3.0, 4.0])?;
/// let b = cpu.alloc_from(&[9.0, 8.0])?;
/// let mut y = cpu.alloc(6)?;
/// cpu.concat_fwd(&ConcatParams::new(2, 2, 3, 0)?, &a, &mut y)?;
/// cpu.concat_fwd(&ConcatParams::new(2, 1, 3, 2)?, &b, &mut y)?;
/// assert_eq!(cpu.to_host(&y, 6)?, [1.0, 2.0, 9.0, 3.0, 4.0, 8.0]);
/// # Ok::<(), kiln_kernels::Error>(())
/// ```
pub trait ConcatKernel: Storage {
    /// `y[row * total + offset ..][..width] = x[row * width ..][..width]` for each row;
    /// the rest of `y` is left as it is.
    fn concat_fwd(&self, p: &ConcatParams, x: &Self::Buffer, y: &mut Self::Buffer) -> Result<()>;

    /// `dx[row * width ..][..width] = dy[row * total + offset ..][..width]` for each
    /// row, added to `dx` when `dx.accumulate`.
    fn concat_bwd(
        &self,
        p: &ConcatParams,
        dy: &Self::Buffer,
        dx: InputGrad<'_, Self::Buffer>,
    ) -> Result<()>;
}

#[cfg(test)]
mod tests;
