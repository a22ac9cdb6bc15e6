//! How one product is run: which operands are packed, and how it is cut into pool
//! tasks.

use super::block::{Isa, KC, NC, NR, Packing};
use super::scratch::PARTIAL_LEN;
use super::{Lhs, MatRef};

/// Products with fewer multiply-adds run on the calling thread alone: below about
/// 10 µs of work, waking the pool's other threads costs about what it saves (measured
/// on two Zen cores: 64 x 64 x 64 takes 4.9 µs alone, 4.3 µs on two threads). Under
/// Miri, far lower, so that the threaded paths run at sizes it can interpret.
const PARALLEL_MIN: usize = if cfg!(miri) { 1 << 12 } else { 1 << 19 };

/// Up to this many rows of `a`, `b` is read in place rather than packed: so few row
/// strips reuse each packed value that the copy does not pay for itself.
const DIRECT_B_MAX_M: usize = 64;

/// How a product is cut into pool tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Split {
    /// Blocks of this many rows of `c`, each task writing its block.
    Rows(usize),
    /// Blocks of this many columns of `c`.
    Cols(usize),
    /// Ranges of this many steps of `k`: task 0 computes `c` from its range, the others
    /// write partial products that are added in afterwards.
    Depth(usize),
}

/// The decisions for one product.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    pub(super) packing: Packing,
    pub(super) split: Split,
    /// The number of tasks; 1 runs on the calling thread without the pool.
    pub(super) tasks: usize,
}

/// Plans `c (m x n) = a (m x k) * b (k x n)` on `threads` threads for the
/// micro-kernel of `isa`.
pub(super) fn plan(
    m: usize,
    n: usize,
    k: usize,
    threads: usize,
    isa: Isa,
    a: &Lhs<'_>,
    b: &MatRef<'_>,
) -> Plan {
    // Reading `a` in place (with a prefetch of the next strip) is as fast as packing it
    // when one of its strides is 1, and saves a copy that thin products (small `n`)
    // cannot amortise. Other strides are packed, and patches are gathered.
    let direct_a = matches!(a, Lhs::Mat(a) if a.col_stride == 1 || a.row_stride == 1);
    let direct_b = b.col_stride == 1 && m <= DIRECT_B_MAX_M;
    let packing = Packing { direct_a, direct_b };
    let single = Plan {
        packing,
        split: Split::Rows(m),
        tasks: 1,
    };
    if threads <= 1 || m.saturating_mul(n).saturating_mul(k) < PARALLEL_MIN {
        return single;
    }
    let mr = isa.mr();
    let tiles_m = m.div_ceil(mr);
    let tiles_n = n.div_ceil(NR);
    // Splitting `k` costs a reduction of `m x n` partial sums per extra task: worth it
    // for a small `c` and a long `k` (the weight gradients), or when `c` has too few
    // tiles to share out.
    let depth = m * n <= PARTIAL_LEN
        && k >= 2 * threads
        && (k >= 8 * m.max(n) || (tiles_m < 2 * threads && tiles_n < 2 * threads));
    if depth {
        let chunk = k.div_ceil(threads);
        return Plan {
            packing,
            split: Split::Depth(chunk),
            tasks: k.div_ceil(chunk),
        };
    }
    // Otherwise rows, unless `c` is short and wide enough that columns balance better.
    let rows = tiles_m >= 4 * threads
        || tiles_m.div_ceil(threads) * tiles_n <= tiles_m * tiles_n.div_ceil(threads);
    if !rows {
        let tasks = tiles_n.clamp(threads, 8 * threads);
        let chunk = tiles_n.div_ceil(tasks) * NR;
        return Plan {
            packing,
            split: Split::Cols(chunk),
            tasks: n.div_ceil(chunk),
        };
    }
    // Several tasks per thread, so that a thread slowed by something else hands work
    // over to the other. A worker packs `b` once for all its tasks when it fits its
    // buffer; otherwise every task packs it again, so tasks get at least 96 rows to
    // amortise that.
    let b_whole = direct_b || k * n.next_multiple_of(NR) <= KC * NC;
    let min_tiles = if b_whole { 1 } else { 96usize.div_ceil(mr) };
    let tasks = (tiles_m / min_tiles)
        .clamp(threads, 8 * threads)
        .min(tiles_m);
    let chunk = tiles_m.div_ceil(tasks) * mr;
    Plan {
        packing,
        split: Split::Rows(chunk),
        tasks: m.div_ceil(chunk),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_for(m: usize, k: usize, n: usize, trans_a: bool, trans_b: bool) -> Plan {
        // Only the strides matter to the planner.
        let a = if trans_a {
            MatRef::row_major(&[], k, m).t()
        } else {
            MatRef::row_major(&[], m, k)
        };
        let b = if trans_b {
            MatRef::row_major(&[], n, k).t()
        } else {
            MatRef::row_major(&[], k, n)
        };
        plan(m, n, k, 2, Isa::detect(), &Lhs::Mat(a), &b)
    }

    #[test]
    fn the_seed_cnn_products_keep_both_threads_busy() {
        for &(m, k, n, ta, tb) in &[
            (57600, 27, 32, false, false),
            (27, 57600, 32, true, false),
            (10816, 288, 64, false, false),
            (288, 10816, 64, true, false),
            (10816, 64, 288, false, true),
            (1024, 576, 128, false, false),
            (576, 1024, 128, true, false),
            (1024, 128, 576, false, true),
            (64, 512, 128, false, false),
        ] {
            let p = plan_for(m, k, n, ta, tb);
            assert!(p.tasks >= 2, "{m}x{k}x{n}: {p:?}");
            // Thin weight gradients split `k`; everything else splits rows.
            let depth = matches!(p.split, Split::Depth(_));
            assert_eq!(depth, k > 8 * m.max(n), "{m}x{k}x{n}: {p:?}");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri lowers the threshold")]
    fn small_products_stay_on_the_calling_thread() {
        assert_eq!(plan_for(64, 64, 64, false, false).tasks, 1);
        assert_eq!(plan_for(1, 1, 1, false, false).tasks, 1);
        assert!(plan_for(64, 128, 64, false, false).tasks > 1);
    }

    #[test]
    fn b_is_read_in_place_only_with_unit_column_stride() {
        assert!(plan_for(27, 57600, 32, true, false).packing.direct_b);
        assert!(!plan_for(27, 57600, 32, true, true).packing.direct_b);
        assert!(!plan_for(1024, 576, 128, false, false).packing.direct_b);
    }
}
