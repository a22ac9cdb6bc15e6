//! A steady-state training step (forward, loss, backward, optimizer update) of the
//! seed CNN, of a model of nested residual blocks and a concatenation, and of stacked
//! LSTMs, performs no heap allocation, on any thread: every buffer is sized when the
//! model, the loss and the optimizer are built or first used.

// The harness is shared by the test below; a failing call fails the test.
#![allow(clippy::unwrap_used)]

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

kiln::model! {
    /// Batch normalisation, nested residual blocks (identity and projection
    /// shortcuts) and a concatenation, so that shared gradients, sums and copies are
    /// counted too.
    pub struct Blocks {
        input: [16, 16, 3],
        stem: Conv2d(8, 3, padding = same),
        bn: BatchNorm(relu),
        res: Residual(activation = relu) {
            a: Conv2d(8, 3, padding = same, activation = relu),
            inner: Residual(activation = relu) {
                b: Conv2d(8, 3, padding = same),
                bn: BatchNorm(convention = pytorch),
            },
        },
        down: Residual(activation = relu) {
            a: Conv2d(16, 3, stride = 2, padding = same, activation = tanh),
            shortcut: Conv2d(16, 1, stride = 2),
        },
        mix: Concat {
            one: Conv2d(4, 1, relu),
            pooled: Sequential {
                pool: AvgPool2d(3, stride = 1, padding = same),
                conv: Conv2d(4, 1),
            },
            skip: Identity,
        },
        pool: MaxPool2d(2),
        gap: GlobalAvgPool2d,
        drop: Dropout(0.1),
        out: Dense(10, softmax),
    }
}

kiln::model! {
    /// Stacked LSTMs over a real-valued sequence, the second returning its last step:
    /// backpropagation through time runs over the layers' own workspaces.
    pub struct StackedLstm {
        input: [12, 5],
        lstm1: Lstm(16, return_sequences = true),
        lstm2: Lstm(16),
        out: Dense(10, softmax),
    }
}

kiln::model! {
    /// A small GPT over a real-valued sequence: position embeddings, a pre-norm block
    /// of causal attention and an MLP, pooled into a class.
    pub struct SmallGpt {
        input: [12, 8],
        position: PositionEmbedding(12),
        attention: Residual {
            ln: LayerNorm,
            attn: MultiHeadAttention(2, causal = true),
        },
        mlp: Residual {
            ln: LayerNorm,
            fc: TimeDense(16, gelu),
            proj: TimeDense(8),
        },
        ln_f: LayerNorm,
        pool: GlobalAvgPool1d,
        out: Dense(10, softmax),
    }
}

/// Heap allocations over four steady-state training steps of `model` (after two to
/// warm up), alternating typed and host batches.
fn steady_state_allocations<M: Model<Cpu>>(mut model: M, batch: usize) -> usize {
    let cpu = model.backend().clone();
    let images: Vec<f32> = (0..batch * M::INPUT_SHAPE.size())
        .map(|i| (i as f32 * 0.01).sin())
        .collect();
    let x = Tensor::<M::Input, Cpu>::from_slice(&cpu, batch, &images).unwrap();
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let loss = Loss::sparse_categorical_crossentropy().label_smoothing(0.1);
    let mut criterion =
        Criterion::new(loss, &cpu, model.max_batch(), M::OUTPUT_ACTIVATION).unwrap();
    let mut optimizer = Optimizer::new(Adam::default()).clip_global_norm(5.0);
    let mut step = |model: &mut M, typed: bool| {
        let output = if typed {
            model.forward(&x, Mode::Train).unwrap()
        } else {
            model.forward_host(&images, Mode::Train).unwrap()
        };
        let loss = criterion
            .compute(&output, BatchTargets::Labels(&labels), None)
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

    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for i in 0..4 {
        step(&mut model, i % 2 == 0);
    }
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst)
}

// One test, so that no other test's allocations are counted.
#[test]
fn a_training_step_allocates_nothing() {
    let cpu = Cpu::with_threads(2).unwrap();
    let allocations = steady_state_allocations(SeedCnn::new(&cpu, 16, 1).unwrap(), 16);
    assert_eq!(
        allocations, 0,
        "seed CNN: {allocations} heap allocations in 4 steady-state steps"
    );
    let allocations = steady_state_allocations(Blocks::new(&cpu, 8, 1).unwrap(), 8);
    assert_eq!(
        allocations, 0,
        "batch normalisation, residual and concatenated blocks: {allocations} heap allocations in 4 steady-state steps"
    );
    let allocations = steady_state_allocations(StackedLstm::new(&cpu, 8, 1).unwrap(), 8);
    assert_eq!(
        allocations, 0,
        "stacked LSTMs: {allocations} heap allocations in 4 steady-state steps"
    );
    let allocations = steady_state_allocations(SmallGpt::new(&cpu, 8, 1).unwrap(), 8);
    assert_eq!(
        allocations, 0,
        "a small GPT: {allocations} heap allocations in 4 steady-state steps"
    );
}
