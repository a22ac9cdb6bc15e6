//! The ops, one folder each: `mod.rs` holds the op's trait, parameters, docs and
//! tests; `cpu.rs` the reference math on the CPU; with the `cuda` feature, `<op>.cu` the
//! GPU kernels and `cuda.rs` their launch code.
//!
//! Parameter structs are `#[repr(C)]` with `u32` fields, so that they cross into a GPU
//! kernel as they are.

pub mod activation;
pub mod add;
pub mod bias;
pub mod concat;
pub mod conv2d;
pub mod dropout;
pub mod loss;
pub mod matmul;
pub mod metric;
pub mod optimizer;
pub mod pool2d;
pub mod reduce;

/// Where a backward pass puts the gradient of one of its inputs.
///
/// A value that feeds several consumers (a residual block's input feeds its branch and
/// its shortcut) gets the sum of their gradients: the first consumer to run backward
/// writes the buffer, the others add to it, so that no pass over a scratch copy is
/// needed.
#[derive(Debug)]
pub struct InputGrad<'a, T: ?Sized> {
    /// The gradient's buffer.
    pub buffer: &'a mut T,
    /// Add to what `buffer` holds instead of overwriting it.
    pub accumulate: bool,
}

impl<'a, T: ?Sized> InputGrad<'a, T> {
    /// Overwrites `buffer` with the gradient.
    pub fn write(buffer: &'a mut T) -> Self {
        Self {
            buffer,
            accumulate: false,
        }
    }

    /// Adds the gradient to what `buffer` holds.
    pub fn add_to(buffer: &'a mut T) -> Self {
        Self {
            buffer,
            accumulate: true,
        }
    }

    /// The same destination, reborrowed for a shorter call.
    pub fn reborrow(&mut self) -> InputGrad<'_, T> {
        InputGrad {
            buffer: self.buffer,
            accumulate: self.accumulate,
        }
    }
}

/// `usize` from a `u32` parameter field.
#[inline]
pub(crate) fn us(v: u32) -> usize {
    v as usize
}

/// A `u32` parameter field from a size, or an error naming the op if it overflows.
pub(crate) fn u32_of(op: &'static str, what: &str, v: usize) -> crate::Result<u32> {
    u32::try_from(v).map_err(|_| crate::Error::InvalidParams {
        op,
        detail: format!("{what} = {v} does not fit in 32 bits"),
    })
}
