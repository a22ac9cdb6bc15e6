//! Single-precision matrix product for the CPU backend:
//! `c = act(alpha * a * b + beta * c + bias)` on strided views, the bias and the
//! activation (an `Epilogue`) applied as each tile of `c` is stored.
//!
//! The structure is Goto's (as in BLIS): panels of `b` and blocks of `a` sized for the
//! caches, and a register-tiled micro-kernel over strips of both: 8 x 32 with
//! AVX-512 (two 16-column strips of `b` side by side), 6 x 16 with AVX2 + FMA, plain
//! Rust elsewhere, chosen at run time from what the CPU has. The parts, one file
//! each:
//!
//! - `plan`: per product, which operands are packed and how the work is cut into
//!   pool tasks (rows of `c`, columns of `c`, or ranges of `k` for the weight
//!   gradients' small `c` and long `k`);
//! - `block`: the cache-blocked loops and the macro-kernel for one task;
//! - `pack`: copies into the strips the micro-kernel streams through;
//! - `patches`: a convolution's patch matrix as a left operand, gathered block by
//!   block (implicit im2col);
//! - `kernel_avx512`, `kernel_avx2`, `kernel_portable`: the micro-kernels;
//! - `scratch`: the buffers.
//!
//! Every buffer is allocated once per backend, so that a training step performs no
//! heap allocation (the `gemm` and `matrixmultiply` crates allocate on every call).

mod block;
#[cfg(target_arch = "x86_64")]
mod kernel_avx2;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512;
mod kernel_portable;
mod pack;
mod patches;
mod plan;
mod scratch;
#[cfg(test)]
mod tests;

use std::sync::Mutex;

use super::{CpuInner, SendPtr};
use crate::ops::activation::ActivationKind;
pub(crate) use block::Isa;
use block::{Job, NR};
pub(crate) use patches::{PatchGeometry, Patches};
use plan::{Split, plan};
use scratch::Buffers;

/// A read-only strided matrix view. Element `(i, j)` is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// The storage the view indexes into.
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Distance between rows.
    pub row_stride: usize,
    /// Distance between columns.
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` view of the start of `data`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transposed view (no data moves).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    #[inline]
    pub(crate) fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }
}

/// The left operand of a product.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lhs<'a> {
    /// A matrix in memory.
    Mat(MatRef<'a>),
    /// A convolution's patch matrix, `pixels x (kh * kw * c_in)`.
    Patches(Patches<'a>),
    /// Its transpose (the weight gradient's left operand).
    PatchesT(Patches<'a>),
}

impl Lhs<'_> {
    fn rows(&self) -> usize {
        match self {
            Self::Mat(a) => a.rows,
            Self::Patches(p) => p.geometry.rows(),
            Self::PatchesT(p) => p.geometry.cols(),
        }
    }

    fn cols(&self) -> usize {
        match self {
            Self::Mat(a) => a.cols,
            Self::Patches(p) => p.geometry.cols(),
            Self::PatchesT(p) => p.geometry.rows(),
        }
    }

    /// Whether every element the operand reads lies inside its slice.
    fn fits(&self) -> bool {
        match self {
            Self::Mat(a) => fits(a),
            Self::Patches(p) | Self::PatchesT(p) => p.geometry.input_len() <= p.x.len(),
        }
    }
}

/// A mutable row-major matrix view with a row stride.
#[derive(Debug)]
pub struct MatMut<'a> {
    /// The storage the view indexes into.
    pub data: &'a mut [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Distance between rows (at least `cols`).
    pub row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A row-major `rows x cols` view of the start of `data`.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
        }
    }
}

/// What the product's store applies to each output element, after alpha and beta:
/// `c[i][j] = act(alpha * (a b)[i][j] + beta * c[i][j] + bias[j])`.
///
/// Applied once per element, as the last `k` block of a tile is stored: in registers
/// for `Linear`, `Relu` and `LeakyRelu`, over the just-stored tile for `Sigmoid` and
/// `Tanh`. `Gelu` and `Softmax` are not supported (callers apply them after the
/// product): a debug build asserts, a release build applies no activation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Epilogue<'a> {
    /// One value per column of `c`, added to every row; `None` adds nothing.
    pub(crate) bias: Option<&'a [f32]>,
    /// The function applied last.
    pub(crate) activation: ActivationKind,
    /// The slope below zero of [`ActivationKind::LeakyRelu`].
    pub(crate) negative_slope: f32,
}

impl Epilogue<'_> {
    /// No bias, no activation: the plain product.
    pub(crate) const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        activation: ActivationKind::Linear,
        negative_slope: 0.0,
    };

    /// Whether the epilogue leaves every value as it is.
    pub(crate) fn is_none(&self) -> bool {
        self.bias.is_none()
            && matches!(
                self.activation,
                ActivationKind::Linear | ActivationKind::Gelu | ActivationKind::Softmax
            )
    }

    /// The epilogue of the columns from `j0` on (the bias shifted by `j0`).
    fn shifted(&self, j0: usize) -> Self {
        Self {
            bias: self.bias.map(|b| &b[j0..]),
            ..*self
        }
    }

    /// Applies the epilogue to `row`, which holds columns `j0..j0 + row.len()` of `c`.
    // Kept out of line: inlined, it would bloat the macro-kernel's tile loop.
    #[inline(never)]
    pub(crate) fn apply(&self, row: &mut [f32], j0: usize) {
        if let Some(bias) = self.bias {
            let bias = &bias[j0..j0 + row.len()];
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
        // One loop per function, so that the simple ones vectorise.
        fn map(row: &mut [f32], f: impl Fn(f32) -> f32) {
            row.iter_mut().for_each(|v| *v = f(*v));
        }
        let slope = self.negative_slope;
        match self.activation {
            // `x < 0` is false for NaN, which therefore propagates.
            ActivationKind::Relu => map(row, |x| if x < 0.0 { 0.0 } else { x }),
            ActivationKind::LeakyRelu => map(row, |x| if x < 0.0 { slope * x } else { x }),
            ActivationKind::Sigmoid => map(row, sigmoid),
            ActivationKind::Tanh => map(row, f32::tanh),
            ActivationKind::Linear | ActivationKind::Gelu | ActivationKind::Softmax => {}
        }
    }
}

/// The logistic function, without overflow in `exp` for large `|x|`.
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Packing buffers, one set per pool worker, allocated once per backend.
pub(crate) struct GemmScratch {
    // Held for the duration of one product: two threads sharing a `Cpu` take turns.
    buffers: Mutex<Buffers>,
    isa: Isa,
}

impl GemmScratch {
    /// The micro-kernel this backend runs.
    pub(crate) fn isa(&self) -> Isa {
        self.isa
    }

    /// The same scratch, running micro-kernel `isa` (which the CPU must support).
    #[cfg(test)]
    pub(crate) fn with_isa(self, isa: Isa) -> Self {
        Self { isa, ..self }
    }

    /// Scratch for a pool of `threads` workers; detects the CPU's micro-kernel.
    pub(crate) fn new(threads: usize) -> Self {
        Self {
            buffers: Mutex::new(Buffers::new(threads)),
            isa: Isa::detect(),
        }
    }
}

/// Whether every element of the view lies inside its slice (without overflow).
fn fits(v: &MatRef<'_>) -> bool {
    if v.rows == 0 || v.cols == 0 {
        return true;
    }
    let last = (v.rows - 1).checked_mul(v.row_stride).and_then(|r| {
        (v.cols - 1)
            .checked_mul(v.col_stride)
            .and_then(|c| r.checked_add(c))
    });
    last.is_some_and(|l| l < v.data.len())
}

/// `c = beta * c`, with `beta == 0` writing zeros without reading.
fn scale(beta: f32, c: &mut MatMut<'_>) {
    for i in 0..c.rows {
        let row = &mut c.data[i * c.row_stride..i * c.row_stride + c.cols];
        if beta == 0.0 {
            row.fill(0.0);
        } else {
            row.iter_mut().for_each(|v| *v *= beta);
        }
    }
}

/// `c = alpha * a * b + beta * c`. With `beta == 0` the old contents of `c` are not
/// read (NaN there does not propagate).
///
/// # Panics
/// Panics if the views' sizes disagree or overrun their slices; callers check shapes
/// and return errors first.
pub(crate) fn sgemm(
    cpu: &CpuInner,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
) {
    sgemm_with(cpu, alpha, a, b, beta, c, &Epilogue::NONE);
}

/// `c = act(alpha * a * b + beta * c + bias)`, the bias and the activation given by
/// `epilogue` (see [`Epilogue`] for the activations it supports). With `beta == 0`
/// the old contents of `c` are not read (NaN there does not propagate).
///
/// # Panics
/// Panics if the views' sizes disagree or overrun their slices, or if the bias does
/// not hold one value per column of `c`; callers check shapes and return errors first.
pub(crate) fn sgemm_with(
    cpu: &CpuInner,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    epilogue: &Epilogue<'_>,
) {
    sgemm_lhs(cpu, alpha, Lhs::Mat(a), b, beta, c, epilogue);
}

/// As [`sgemm_with`], with any [`Lhs`]: a convolution's patches are gathered block by
/// block as the product reaches them.
///
/// # Panics
/// As [`sgemm_with`].
pub(crate) fn sgemm_lhs(
    cpu: &CpuInner,
    alpha: f32,
    a: Lhs<'_>,
    b: MatRef<'_>,
    beta: f32,
    mut c: MatMut<'_>,
    epilogue: &Epilogue<'_>,
) {
    assert_eq!(a.cols(), b.rows, "sgemm: inner dimensions");
    assert_eq!(
        (a.rows(), b.cols),
        (c.rows, c.cols),
        "sgemm: output dimensions"
    );
    if let Some(bias) = epilogue.bias {
        assert_eq!(bias.len(), c.cols, "sgemm: one bias value per column");
    }
    debug_assert!(
        !matches!(
            epilogue.activation,
            ActivationKind::Gelu | ActivationKind::Softmax
        ),
        "sgemm: {:?} is not fused; apply it after the product",
        epilogue.activation
    );
    let (m, n, k) = (c.rows, c.cols, a.cols());
    if m == 0 || n == 0 {
        return;
    }
    assert!(a.fits() && fits(&b), "sgemm: an operand overruns its slice");
    assert!(
        (m == 1 || c.row_stride >= n)
            && (m - 1)
                .checked_mul(c.row_stride)
                .and_then(|r| r.checked_add(n))
                .is_some_and(|e| e <= c.data.len()),
        "sgemm: the output overruns its slice"
    );
    if k == 0 || alpha == 0.0 {
        scale(beta, &mut c);
        if !epilogue.is_none() {
            for i in 0..m {
                epilogue.apply(&mut c.data[i * c.row_stride..i * c.row_stride + n], 0);
            }
        }
        return;
    }
    let scratch = &cpu.gemm;
    let mut buffers = scratch
        .buffers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    buffers.products = buffers.products.wrapping_add(1);
    let product = buffers.products;
    let buffers = &*buffers;
    let plan = plan(m, n, k, buffers.workers.len(), scratch.isa, &a, &b);
    let c_rs = c.row_stride;
    let c_ptr = SendPtr(c.data.as_mut_ptr());
    // With a split `k`, the epilogue waits for the partial sums to be added up.
    let depth = matches!(plan.split, Split::Depth(_));
    let task_epilogue = if depth { Epilogue::NONE } else { *epilogue };
    let task = |t: usize, worker: usize| {
        let (rows, cols, ks) = match plan.split {
            Split::Rows(chunk) => (t * chunk..m.min((t + 1) * chunk), 0..n, 0..k),
            Split::Cols(chunk) => (0..m, t * chunk..n.min((t + 1) * chunk), 0..k),
            Split::Depth(chunk) => (0..m, 0..n, t * chunk..k.min((t + 1) * chunk)),
        };
        let (dst, dst_rs, beta) = if depth && t > 0 {
            // SAFETY: the plan makes at most `threads` tasks of a split `k`, so cell
            // `t - 1` exists, and only task `t` uses it.
            let partial = unsafe { buffers.partials.get(t - 1) };
            (partial.as_mut_slice().as_mut_ptr(), n, 0.0)
        } else {
            // `wrapping_add`: the offset is inside `c` because the block is not empty.
            (
                c_ptr.get().wrapping_add(rows.start * c_rs + cols.start),
                c_rs,
                beta,
            )
        };
        let job = Job {
            product,
            isa: scratch.isa,
            packing: plan.packing,
            alpha,
            beta,
            a,
            b,
            rows,
            cols,
            ks,
            c: dst,
            c_rs: dst_rs,
            epilogue: task_epilogue,
        };
        // SAFETY: tasks write disjoint blocks of `c` (or their own partial buffer, which
        // holds `m * n <= PARTIAL_LEN` values, rows `n` apart); `c` is exclusively
        // borrowed for this call and was checked to hold the whole `m x n` block; the
        // operands were checked to fit their slices; the planner reads `b` in place only
        // with a unit column stride; and the pool runs one task at a time per worker,
        // so no two tasks share worker scratch.
        unsafe { block::run(&job, buffers.workers.get(worker)) };
    };
    // The pool's caller spins while the other threads finish their last tasks, so a
    // product does not pay for waking up from a sleep.
    cpu.pool.run(plan.tasks, &task);
    if depth {
        // Row by row, so that the epilogue finds its row in L1.
        for i in 0..m {
            let row = &mut c.data[i * c_rs..i * c_rs + n];
            for t in 1..plan.tasks {
                // SAFETY: the pool is done, so no task holds a partial cell any more, and
                // this reference ends with the iteration.
                let partial = unsafe { buffers.partials.get(t - 1) }.as_mut_slice();
                let src = &partial[i * n..(i + 1) * n];
                row.iter_mut().zip(src).for_each(|(d, s)| *d += s);
            }
            epilogue.apply(row, 0);
        }
    }
}

/// Columns per strip of a packed right-hand operand (see [`packed_index`]).
pub(crate) const PACKED_STRIP: usize = NR;

/// Values a packed `k x n` right-hand operand of [`sgemm_prepacked`] takes. The
/// layout: strips of 16 columns one after the other, each `k` rows of 16 values
/// (zero past the last column); see [`packed_index`].
pub(crate) fn packed_len(k: usize, n: usize) -> usize {
    k * n.next_multiple_of(NR)
}

/// Where element `(p, j)` of a packed `k x n` operand lives.
#[inline]
pub(crate) fn packed_index(k: usize, p: usize, j: usize) -> usize {
    j / NR * NR * k + p * NR + j % NR
}

/// `c = a * b + beta * c` on the calling thread, with `b` already packed (see
/// [`packed_len`]): for many small products inside one pool task, where [`sgemm`]'s
/// planning, packing and hand-over to the pool would cost more than the product.
/// With `beta == 0` the old contents of `c` are not read.
///
/// # Panics
/// Panics if the views' sizes disagree or overrun their slices.
pub(crate) fn sgemm_prepacked(
    isa: Isa,
    a: MatRef<'_>,
    b: &[f32],
    n: usize,
    beta: f32,
    mut c: MatMut<'_>,
) {
    assert_eq!((a.rows, n), (c.rows, c.cols), "sgemm: output dimensions");
    assert!(fits(&a), "sgemm: an operand overruns its slice");
    assert!(
        b.len() >= packed_len(a.cols, n),
        "sgemm: the packed operand is short"
    );
    let (m, c_rs) = (c.rows, c.row_stride);
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m == 1 || c_rs >= n) && (m - 1) * c_rs + n <= c.data.len(),
        "sgemm: the output overruns its slice"
    );
    if a.cols == 0 {
        scale(beta, &mut c);
        return;
    }
    // SAFETY: checked above: `a` fits its slice, `b` holds the packed operand, and `c`
    // is exclusively borrowed and holds the `m x n` block.
    unsafe { block::run_prepacked(isa, &a, b, n, beta, c.data.as_mut_ptr(), c_rs) };
}

/// The textbook triple loop: the oracle the fast path is tested against.
#[cfg(test)]
pub(crate) fn reference(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    for i in 0..c.rows {
        for j in 0..c.cols {
            let mut acc = 0.0f32;
            for p in 0..a.cols {
                acc += a.at(i, p) * b.at(p, j);
            }
            let dst = &mut c.data[i * c.row_stride + j];
            *dst = if beta == 0.0 {
                alpha * acc
            } else {
                alpha * acc + beta * *dst
            };
        }
    }
}
