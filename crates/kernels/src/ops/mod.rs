//! The ops, one folder each: `mod.rs` holds the op's trait, parameters, docs and
//! tests; `cpu.rs` the reference math on the CPU; with the `cuda` feature, `<op>.cu` the
//! GPU kernels and `cuda.rs` their launch code.
//!
//! Parameter structs are `#[repr(C)]` with `u32` fields, so that they cross into a GPU
//! kernel as they are.

pub mod activation;
pub mod bias;
pub mod conv2d;
pub mod dropout;
pub mod loss;
pub mod matmul;
pub mod metric;
pub mod optimizer;
pub mod pool2d;
pub mod reduce;

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
