//! Attention's memory in a training step grows with the context, not with its
//! square: the fused op keeps each query row's log-sum-exp, never the attention
//! matrix. Measured with a global allocator that tracks the live and the peak heap
//! bytes: a model of one causal `MultiHeadAttention` (width 128, 4 heads, batches of
//! 12) at contexts 64 to 1,024, the bytes its construction allocates (parameters,
//! their gradients, the workspace and the layer's buffers) and the peak above that
//! during a training step (forward, backward). For comparison, the attention matrix
//! that a plain implementation keeps for its backward pass: `batch * heads * T * T`
//! floats.
//!
//! `cargo test -p kiln --test attention_memory -- --nocapture` prints the table
//! (docs/BENCHMARKS.md holds it).

#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln::prelude::*;

struct Tracking;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::SeqCst) + bytes;
    PEAK.fetch_max(live, Ordering::SeqCst);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters
// have no effect on the memory handed out.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        grew(new_size);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

const BATCH: usize = 12;
const HEADS: usize = 4;

macro_rules! attention_models {
    ($($name:ident: $context:literal),+) => {
        $(
            kiln::model! {
                /// One causal multi-head attention layer over the context.
                struct $name {
                    input: [$context, 128],
                    attn: MultiHeadAttention(4, causal = true),
                }
            }
        )+
    };
}

attention_models!(C64: 64, C128: 128, C256: 256, C512: 512, C1024: 1024);

/// The bytes `M`'s construction leaves allocated, and the peak above them during a
/// training step (after one to warm up).
fn measure<M: Model<Cpu>>(cpu: &Cpu) -> (usize, usize) {
    let before = LIVE.load(Ordering::SeqCst);
    let mut model = M::new(cpu, BATCH, 1).unwrap();
    let built = LIVE.load(Ordering::SeqCst) - before;
    let n = BATCH * M::INPUT_SHAPE.size();
    let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    let grad = Tensor::<M::Output, Cpu>::from_slice(cpu, BATCH, &x).unwrap();
    let step = |model: &mut M| {
        model.forward_host(&x, Mode::Train).unwrap();
        model.zero_grad().unwrap();
        model.backward(&grad, GradAt::Output).unwrap();
    };
    step(&mut model);
    let live = LIVE.load(Ordering::SeqCst);
    PEAK.store(live, Ordering::SeqCst);
    step(&mut model);
    let during = PEAK.load(Ordering::SeqCst) - live;
    (built, during)
}

// One test, so that no other test's allocations are counted.
#[test]
fn attention_memory_grows_linearly_with_the_context() {
    let cpu = Cpu::with_threads(2).unwrap();
    let rows = [
        (64, measure::<C64>(&cpu)),
        (128, measure::<C128>(&cpu)),
        (256, measure::<C256>(&cpu)),
        (512, measure::<C512>(&cpu)),
        (1024, measure::<C1024>(&cpu)),
    ];
    let parameters = 2 * 4 * <C64>::PARAMETERS;
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!(
        "| context | built | beyond the parameters | per step of context | a step's peak above built | a plain attention matrix |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for &(t, (built, during)) in &rows {
        println!(
            "| {t} | {:.2} MiB | {:.2} MiB | {} B | {during} B | {:.1} MiB |",
            mib(built),
            mib(built - parameters),
            (built - parameters) / t,
            mib(BATCH * HEADS * t * t * 4)
        );
    }
    for pair in rows.windows(2) {
        let ((t0, (b0, d0)), (t1, (b1, d1))) = (pair[0], pair[1]);
        // Twice the context, twice the memory beyond the parameters: linear.
        let ratio = (b1 - parameters) as f64 / (b0 - parameters) as f64;
        assert!(
            (1.9..=2.1).contains(&ratio),
            "context {t0} -> {t1}: memory beyond the parameters x{ratio:.3}"
        );
        assert_eq!((d0, d1), (0, 0), "a training step allocated");
    }
}
