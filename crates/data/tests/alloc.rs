//! Steady-state batching of an in-memory data set does not allocate: after the first
//! epoch, no thread allocates while an epoch's batches are delivered.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln_data::{Augment, BatchOptions, Batcher, InMemory, Inputs, Pipeline, Targets};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to the system allocator with the caller's arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_batching_does_not_allocate() {
    let n = 1000;
    let data = InMemory::new(
        vec![8, 8, 3],
        Inputs::U8((0..n * 192).map(|i| (i % 251) as u8).collect()),
        Targets::Classes {
            labels: (0..n).map(|i| (i % 10) as u32).collect(),
            classes: 10,
        },
    )
    .unwrap();
    for workers in [0, 2] {
        let options = BatchOptions::new(32)
            .workers(workers)
            .augment(Augment::none().crop(2).flip())
            .pipeline(Pipeline::new().scale(1.0 / 255.0));
        let mut batcher = Batcher::new(Arc::new(data.clone()), options).unwrap();
        for b in batcher.epoch(0) {
            b.unwrap();
        }
        let mut epoch = batcher.epoch(1);
        let first = epoch.next().unwrap().unwrap();
        drop(first);
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        let mut sum = 0.0;
        for b in epoch.by_ref() {
            let b = b.unwrap();
            sum += b.inputs()[0];
        }
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        drop(epoch);
        assert!(sum.is_finite());
        assert_eq!(
            after - before,
            0,
            "{workers} workers: allocations during the epoch"
        );
    }
}
