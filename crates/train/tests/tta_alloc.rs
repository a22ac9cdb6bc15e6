//! Mirror test-time augmentation allocates nothing per batch: evaluating and
//! predicting ten times as many digits performs as many heap allocations, on any
//! thread, as the buffers of the mean are sized once for the largest batch.

// The harness is shared by the test below; a failing call fails the test.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln::data::InMemory;
use kiln::prelude::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; counting has no
// effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

kiln::model! {
    pub struct Small {
        input: [28, 28, 1],
        conv: Conv2d(filters = 8, kernel = 3, stride = 2, activation = relu),
        pool: MaxPool2d(2),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

/// Heap allocations made while `f` runs.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    f();
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn mirror_tta_allocates_nothing_per_batch() {
    let (_, test) = kiln::data::mnist::embedded().unwrap();
    let digits = |n: usize| -> InMemory { test.select(&(0..n).collect::<Vec<_>>()).unwrap() };
    let (few, many) = (digits(128), digits(1280));
    let model = Small::new(&Cpu::with_threads(2).unwrap(), 64, 1).unwrap();
    let mut t = Trainer::new(
        model,
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()),
    )
    .unwrap()
    .metrics([Metric::Accuracy]);
    let options = EvaluateOptions::new(64)
        .pipeline(Pipeline::new().scale(1.0 / 255.0))
        .tta(Tta::Mirror);
    // The first call sizes what the backend keeps between calls.
    t.evaluate_with(few.clone(), &options).unwrap();
    t.predict_with(few.clone(), &options).unwrap();
    let evaluate = |t: &mut Trainer<Cpu, Small>, data: &InMemory| {
        allocations(|| drop(t.evaluate_with(data.clone(), &options).unwrap()))
    };
    let predict = |t: &mut Trainer<Cpu, Small>, data: &InMemory| {
        allocations(|| drop(t.predict_with(data.clone(), &options).unwrap()))
    };
    // Cloning the data set allocates as often whatever its size: its bytes and labels.
    let (small, large) = (evaluate(&mut t, &few), evaluate(&mut t, &many));
    assert_eq!(small, large, "evaluate: 2 batches and 20 batches");
    let (small, large) = (predict(&mut t, &few), predict(&mut t, &many));
    assert_eq!(small, large, "predict: 2 batches and 20 batches");
}
