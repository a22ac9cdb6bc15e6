//! The batch-size finder's memory estimate against the heap a training step really
//! takes on the CPU: a global allocator tracks the live and peak bytes while a trainer
//! of the seed CNN (Adam) is built and trains, at several batch sizes. The estimate
//! ([`MemoryEstimate`]: parameters and gradients, the optimizer's slots, the
//! workspace the macro planned and the loss's buffers) is what stays allocated
//! between steps; what a step allocates beyond it and frees again (the batcher's
//! buffers) is measured apart.

#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln::data::{InMemory, Inputs, Targets};
use kiln::prelude::*;
use kiln::train::tune::batch_size::{MemoryEstimate, max_batch_for_memory};

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

kiln::model! {
    /// The seed CNN.
    pub struct SeedCnn {
        input: [32, 32, 3],
        conv1: Conv2d(32, 3, relu),
        pool1: MaxPool2d(2),
        conv2: Conv2d(64, 3, relu),
        pool2: MaxPool2d(2),
        conv3: Conv2d(128, 3, relu),
        pool3: MaxPool2d(2),
        flat: Flatten,
        fc1: Dense(128, relu),
        out: Dense(10, softmax),
    }
}

fn images(n: usize) -> InMemory {
    let x: Vec<f32> = (0..n * 32 * 32 * 3)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
    InMemory::new(
        vec![32, 32, 3],
        Inputs::F32(x),
        Targets::Classes {
            labels,
            classes: 10,
        },
    )
    .unwrap()
}

/// The bytes a trainer at batch `batch` keeps between steps, and the peak above them
/// during an epoch of one step.
fn measure(cpu: &Cpu, batch: usize) -> (usize, usize) {
    let data = images(batch);
    let options = || {
        FitOptions::new(1, batch)
            .shuffle(false)
            .verbose(Verbosity::Silent)
    };
    let before = LIVE.load(Ordering::SeqCst);
    let mut trainer = Trainer::new(
        SeedCnn::new(cpu, batch, 1).unwrap(),
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()),
    )
    .unwrap();
    // The first step allocates the optimizer's slots.
    trainer.fit(data.clone(), options()).unwrap();
    let kept = LIVE.load(Ordering::SeqCst) - before;
    let live = LIVE.load(Ordering::SeqCst);
    PEAK.store(live, Ordering::SeqCst);
    trainer.fit(data, options()).unwrap();
    let transient = PEAK.load(Ordering::SeqCst) - live;
    (kept, transient)
}

// One test, so that no other test's allocations are counted.
#[test]
fn the_estimate_is_a_close_lower_bound_of_what_a_trainer_keeps() {
    let cpu = Cpu::with_threads(2).unwrap();
    let adam = kiln::optim::Algorithm::from(Adam::default());
    let estimate = MemoryEstimate::of::<Cpu, SeedCnn<Cpu>>(&adam);
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!("| batch | estimate | kept between steps | a step's peak above that |");
    println!("|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for batch in [16, 64, 256] {
        let (kept, transient) = measure(&cpu, batch);
        println!(
            "| {batch} | {:.2} MiB | {:.2} MiB | {:.2} MiB |",
            mib(estimate.bytes(batch)),
            mib(kept),
            mib(transient)
        );
        assert!(
            kept >= estimate.bytes(batch),
            "batch {batch}: kept {kept} B"
        );
        rows.push((batch, kept));
    }
    // What a sample adds: the plan's workspace and loss buffers, and the layers'
    // own scratch (pooling's indices) that the plan leaves out, within 25 %.
    let ((b0, k0), (b1, k1)) = (rows[0], rows[2]);
    let per_sample = (k1 - k0) as f64 / (b1 - b0) as f64;
    let planned = (estimate.workspace_per_sample + estimate.loss_per_sample) as f64;
    println!("per sample: {per_sample:.0} B kept, {planned:.0} B planned");
    assert!(
        (1.0..1.25).contains(&(per_sample / planned)),
        "{per_sample} B a sample kept, {planned} B planned"
    );
    // The finder's answer is the largest batch the estimate fits into the budget.
    for budget in [16 << 20, 100 << 20, 1 << 30] {
        let b = max_batch_for_memory::<Cpu, SeedCnn<Cpu>>(budget, &adam, 1 << 20).unwrap();
        assert!(estimate.bytes(b) <= budget && estimate.bytes(b + 1) > budget);
    }
    assert_eq!(
        max_batch_for_memory::<Cpu, SeedCnn<Cpu>>(1 << 20, &adam, 1 << 20),
        None,
        "the parameters alone take more than 1 MiB"
    );
}
