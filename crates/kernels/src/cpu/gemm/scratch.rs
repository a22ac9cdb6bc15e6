//! The buffers `sgemm` packs into, allocated once when the backend is built: per pool
//! worker about 1.7 MiB (a block of `a`, a panel or all of `b`), plus 512 KiB of
//! partial sums per worker after the first.

use std::cell::UnsafeCell;
use std::ops::Range;

use super::block::{KC, MC, MR_MAX, NC, NR};

/// One cache line of floats; a `Box<[Line]>` is 64-byte aligned by construction.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A 64-byte aligned, zero-initialised `f32` buffer of fixed length.
pub(super) struct AlignedBuf {
    lines: Box<[Line]>,
}

impl AlignedBuf {
    pub(super) fn new(len: usize) -> Self {
        Self {
            lines: vec![Line([0.0; 16]); len.div_ceil(16)].into_boxed_slice(),
        }
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [f32] {
        let len = self.lines.len() * 16;
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]` with no padding (its size, 64,
        // is a multiple of its alignment), so the lines are `len` contiguous floats,
        // exclusively borrowed through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), len) }
    }
}

/// What one pool worker packs into.
pub(super) struct WorkerScratch {
    /// A packed `MC x KC` block of `a`.
    pub(super) a: AlignedBuf,
    /// A packed `KC x NC` panel of `b`, or all of a product's `b` when it fits.
    pub(super) b: AlignedBuf,
    /// The ragged last strip of `b` when `b` is read in place.
    pub(super) b_edge: AlignedBuf,
    /// Set when `b` holds all of `b` for (product, `k` block length, `k` range, column
    /// range).
    pub(super) whole_b: Option<(u64, usize, Range<usize>, Range<usize>)>,
}

impl WorkerScratch {
    fn new() -> Self {
        Self {
            a: AlignedBuf::new(MC.div_ceil(MR_MAX) * MR_MAX * KC),
            b: AlignedBuf::new(NC.div_ceil(NR) * NR * KC),
            b_edge: AlignedBuf::new(KC * NR),
            whole_b: None,
        }
    }
}

/// The most `m x n` elements a split of `k` may produce per extra task (512 KiB);
/// enough for the weight gradients of kiln's models (576 x 128 is 73 728).
pub(super) const PARTIAL_LEN: usize = 1 << 17;

/// Cells handed out by index to concurrent tasks.
pub(super) struct Cells<T>(Box<[UnsafeCell<T>]>);

// SAFETY: the cells are only reached through `get`, whose callers guarantee that no two
// threads use the same index at once; `T: Send` lets each cell move between threads.
unsafe impl<T: Send> Sync for Cells<T> {}

impl<T> Cells<T> {
    fn new(n: usize, mut make: impl FnMut() -> T) -> Self {
        Self((0..n).map(|_| UnsafeCell::new(make())).collect())
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// The cell at `i`.
    ///
    /// # Safety
    /// No other reference to cell `i` may be live while the result is.
    #[allow(clippy::mut_from_ref)] // the exclusivity is the caller's contract
    pub(super) unsafe fn get(&self, i: usize) -> &mut T {
        // SAFETY: the caller guarantees exclusive access to cell `i`.
        unsafe { &mut *self.0[i].get() }
    }
}

/// Everything one product needs besides its operands: per-worker packing buffers and
/// the partial products of a split `k`.
pub(super) struct Buffers {
    /// Indexed by pool worker.
    pub(super) workers: Cells<WorkerScratch>,
    /// Indexed by task minus one: task 0 of a split `k` writes `c` itself.
    pub(super) partials: Cells<AlignedBuf>,
    /// Counts products, to tell one product's packed `b` from the next one's.
    pub(super) products: u64,
}

impl Buffers {
    pub(super) fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        Self {
            workers: Cells::new(threads, WorkerScratch::new),
            partials: Cells::new(threads - 1, || AlignedBuf::new(PARTIAL_LEN)),
            products: 0,
        }
    }
}
