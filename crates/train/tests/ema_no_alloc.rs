//! A steady-state training step of a model with batch normalisation, its gradient
//! accumulated over two micro-batches, with an optimizer of parameter groups and a
//! moving average updated after the step and swapped in for an evaluation pass and
//! back, performs no heap allocation on any thread.

#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kiln::prelude::*;
use kiln_optim::{Ema, ParamGroup};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; counting has no
// effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

kiln::model! {
    /// A small ResNet-style model: batch normalisation inside a residual block.
    pub struct Net {
        input: [16, 16, 3],
        stem: Conv2d(8, 3, padding = same),
        bn: BatchNorm(relu, convention = pytorch),
        res: Residual(activation = relu) {
            a: Conv2d(8, 3, padding = same),
            bn: BatchNorm(convention = pytorch),
        },
        pool: MaxPool2d(2),
        gap: GlobalAvgPool2d,
        out: Dense(10, softmax),
    }
}

// One test, so that no other test's allocations are counted.
#[test]
fn an_accumulated_step_with_groups_and_an_average_allocates_nothing() {
    let cpu = Cpu::with_threads(2).unwrap();
    let batch = 8;
    let mut model = Net::new(&cpu, batch, 1).unwrap();
    let images: Vec<f32> = (0..batch * 16 * 16 * 3)
        .map(|i| (i as f32 * 0.01).sin())
        .collect();
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let mut criterion = model
        .criterion(Loss::sparse_categorical_crossentropy())
        .unwrap();
    let mut optimizer = Optimizer::new(Sgd {
        learning_rate: 0.1,
        momentum: 0.9,
        nesterov: true,
    })
    .weight_decay(5e-4)
    .schedule(OneCycle::new(0.1, 100))
    .group(
        ParamGroup::new()
            .kinds(["BatchNorm"])
            .names(["*.bias"])
            .weight_decay(0.0),
    );
    let mut ema = Ema::new(0.99).warmup(0.75);
    let mut step = |model: &mut Net| {
        // Two micro-batches of half the batch, their gradients added up, as `fit`
        // accumulates them.
        model.zero_grad().unwrap();
        let half = batch / 2;
        for part in [0..half, half..batch] {
            let x = &images[part.start * 16 * 16 * 3..part.end * 16 * 16 * 3];
            let output = model.forward_host(x, Mode::Train).unwrap();
            criterion
                .launch_part(&output, BatchTargets::Labels(&labels[part]), None, batch)
                .unwrap();
            assert!(criterion.value().unwrap().is_finite());
            model
                .backward(criterion.gradient(), criterion.grad_at())
                .unwrap();
        }
        optimizer.step(model).unwrap();
        ema.update(model).unwrap();
        ema.swap(model).unwrap();
        model.forward_host(&images, Mode::Eval).unwrap();
        ema.swap(model).unwrap();
    };
    // Warm-up: optimizer state, groups, averages, thread-locals.
    step(&mut model);
    step(&mut model);

    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..4 {
        step(&mut model);
    }
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(
        allocations, 0,
        "{allocations} heap allocations in 4 steady-state steps"
    );
}
