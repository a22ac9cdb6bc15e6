//! The ops a model's dataflow graph runs between its layers: the sum of a residual
//! block (with the activation after it), the concatenation of branches, and the sums
//! and copies of gradients where a value feeds several consumers.
//!
//! `model!` plans which buffer each value lives in and calls these in straight-line
//! code; sizes are per batch (`batch` times the per-sample size the macro knows).

use kiln_kernels::ops::InputGrad;
use kiln_kernels::ops::activation::ActivationParams;
use kiln_kernels::ops::add::AddParams;
use kiln_kernels::ops::concat::ConcatParams;
use kiln_kernels::{Backend, GradAt};
use kiln_shape::Activation;

use crate::Result;

/// `y = activation(a + b)` over `len` values.
pub fn add<B: Backend>(
    backend: &B,
    activation: Activation,
    len: usize,
    a: &B::Buffer,
    b: &B::Buffer,
    y: &mut B::Buffer,
) -> Result<()> {
    backend.add_fwd(&AddParams::new(activation, len)?, a, b, y)?;
    Ok(())
}

/// `y = activation(a + y)` over `len` values: the sum written over the branch's
/// output, when nothing reads that output again.
pub fn add_inplace<B: Backend>(
    backend: &B,
    activation: Activation,
    len: usize,
    a: &B::Buffer,
    y: &mut B::Buffer,
) -> Result<()> {
    backend.add_fwd_inplace(&AddParams::new(activation, len)?, a, y)?;
    Ok(())
}

/// The backward pass of [`add`]'s activation, in place on `dy` (`rows` of `cols`
/// values; `y` the sum's output), unless `at` says that `dy` is past it already. The
/// sum itself passes its gradient to both inputs unchanged, which the plan does by
/// lending the same buffer.
pub fn add_backward<B: Backend>(
    backend: &B,
    activation: Activation,
    rows: usize,
    cols: usize,
    y: &B::Buffer,
    dy: &mut B::Buffer,
    at: GradAt,
) -> Result<()> {
    if activation != Activation::Linear && at == GradAt::Output {
        let p = ActivationParams::new(activation, rows, cols)?;
        backend.activation_bwd(&p, y, y, dy)?;
    }
    Ok(())
}

/// `y[row][offset..offset + width] = x[row]` for `rows` rows of `total` values: one
/// input's part of a concatenation along the last axis.
pub fn concat<B: Backend>(
    backend: &B,
    (rows, width, total, offset): (usize, usize, usize, usize),
    x: &B::Buffer,
    y: &mut B::Buffer,
) -> Result<()> {
    let p = ConcatParams::new(rows, width, total, offset)?;
    backend.concat_fwd(&p, x, y)?;
    Ok(())
}

/// The gradient of one input of [`concat()`]: its part of `dy`, written to or added
/// to `dx`.
pub fn concat_backward<B: Backend>(
    backend: &B,
    (rows, width, total, offset): (usize, usize, usize, usize),
    dy: &B::Buffer,
    dx: InputGrad<'_, B::Buffer>,
) -> Result<()> {
    let p = ConcatParams::new(rows, width, total, offset)?;
    backend.concat_bwd(&p, dy, dx)?;
    Ok(())
}

/// `dst += src` over `len` values: a second consumer's gradient added to a value's.
pub fn add_gradient<B: Backend>(
    backend: &B,
    len: usize,
    src: &B::Buffer,
    dst: &mut B::Buffer,
) -> Result<()> {
    add_inplace(backend, Activation::Linear, len, src, dst)
}

/// `dst = src` over `len` values: a gradient that two values share, copied where one
/// of them is about to change it.
pub fn copy<B: Backend>(
    backend: &B,
    len: usize,
    src: &B::Buffer,
    dst: &mut B::Buffer,
) -> Result<()> {
    backend.copy(src, dst, len)?;
    Ok(())
}

/// `dy` passed on unchanged as an input's gradient: copied, or added to what `dx`
/// holds.
pub fn pass_gradient<B: Backend>(
    backend: &B,
    dy: &B::Buffer,
    dx: InputGrad<'_, B::Buffer>,
    len: usize,
) -> Result<()> {
    if dx.accumulate {
        add_gradient(backend, len, dy, dx.buffer)
    } else {
        copy(backend, len, dy, dx.buffer)
    }
}
