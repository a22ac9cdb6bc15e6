//! A steady-state training step (forward, loss, backward, optimizer update) of the
//! seed CNN performs no heap allocation, on any thread: every buffer is sized when the
//! model, the loss and the optimizer are built or first used.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kiln::prelude::*;

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
    /// The CNN of the Keras CIFAR-10 tutorial, with dropout for the mask path.
    pub struct SeedCnn {
        input: [32, 32, 3],
        conv1: Conv2d(32, 3, relu),
        pool1: MaxPool2d(2),
        conv2: Conv2d(64, 3, relu),
        pool2: MaxPool2d(2),
        conv3: Conv2d(128, 3, relu),
        pool3: MaxPool2d(2),
        flat: Flatten,
        drop: Dropout(0.25),
        fc1: Dense(128, gelu),
        out: Dense(10, softmax),
    }
}

#[test]
fn a_training_step_allocates_nothing() {
    let cpu = Cpu::with_threads(2).unwrap();
    let batch = 16;
    let mut model = SeedCnn::new(&cpu, batch, 1).unwrap();
    let images: Vec<f32> = (0..batch * 32 * 32 * 3)
        .map(|i| (i as f32 * 0.01).sin())
        .collect();
    let x = Tensor::<Rank3<32, 32, 3>, Cpu>::from_slice(&cpu, batch, &images).unwrap();
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let mut criterion = model
        .criterion(Loss::sparse_categorical_crossentropy().label_smoothing(0.1))
        .unwrap();
    let mut optimizer = Optimizer::new(Adam::default()).clip_global_norm(5.0);
    let mut step = |model: &mut SeedCnn, typed: bool| {
        let output = if typed {
            model.forward(&x, Mode::Train).unwrap()
        } else {
            model.forward_host(&images, Mode::Train).unwrap()
        };
        let loss = criterion
            .compute(&output, Targets::Classes(&labels), None)
            .unwrap();
        assert!(loss.is_finite());
        model.zero_grad().unwrap();
        model
            .backward(criterion.gradient(), criterion.grad_at())
            .unwrap();
        optimizer.step(model).unwrap();
        model.forward(&x, Mode::Eval).unwrap();
    };
    // Warm-up: lazily initialised thread-locals and the like.
    step(&mut model, true);
    step(&mut model, false);

    COUNTING.store(true, Ordering::SeqCst);
    for i in 0..4 {
        step(&mut model, i % 2 == 0);
    }
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(
        allocations, 0,
        "{allocations} heap allocations in 4 steady-state steps"
    );
}
