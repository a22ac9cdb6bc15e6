//! The batch-size finder: Lightning's search by trial on real training steps, a
//! trainer that runs out of memory marking a size too large (any other error ends
//! the search); the throughput of a few sizes on this device. The estimate from the
//! macro's plan is checked against real allocations in `batch_size_memory.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;

use kiln::data::InMemory;
use kiln::prelude::*;
use kiln::train::tune::batch_size::{
    fastest, is_out_of_memory, max_batch_by_trial, powers_of_two, throughput,
};

kiln::model! {
    /// A small CNN for the 28x28 digits.
    pub struct Small {
        input: [28, 28, 1],
        conv: Conv2d(filters = 8, kernel = 3, stride = 2, activation = relu),
        pool: MaxPool2d(2),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

fn digits(n: usize) -> InMemory {
    let (train, _) = kiln::data::mnist::embedded().unwrap();
    train.select(&(0..n).collect::<Vec<_>>()).unwrap()
}

fn scale() -> Pipeline {
    Pipeline::new().scale(1.0 / 255.0)
}

fn trainer(cpu: &Cpu, batch: usize) -> kiln::train::Result<Trainer<Cpu, Small<Cpu>>> {
    Trainer::new(
        Small::new(cpu, batch, 0)?,
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()),
    )
}

/// What a device's allocator says when a buffer does not fit.
fn out_of_memory(batch: usize) -> kiln::train::Error {
    kiln::train::Error::Model(kiln::nn::Error::Kernel(kiln::kernels::Error::OutOfMemory {
        len: batch * Small::<Cpu>::WORKSPACE_FLOATS_PER_SAMPLE,
        backend: "a device of 300 samples' memory".into(),
    }))
}

#[test]
fn the_search_by_trial_finds_the_largest_batch_that_trains() {
    let cpu = Cpu::with_threads(2).unwrap();
    // A device of 300 samples' memory: a larger model fails to build as on a real
    // device (CUDA's allocation failure is this error); the others train a step.
    let tried = RefCell::new(Vec::new());
    let make = |batch: usize| {
        tried.borrow_mut().push(batch);
        if batch > 300 {
            return Err(out_of_memory(batch));
        }
        trainer(&cpu, batch)
    };
    let found = max_batch_by_trial(make, digits(1000), 16, 1000, &scale()).unwrap();
    assert_eq!(found, Some(300));
    // Doubling 16 -> 512, then halving the gap 256..512: 14 sizes at most.
    let tried = tried.into_inner();
    assert_eq!(&tried[..6], [16, 32, 64, 128, 256, 512]);
    assert!(tried.len() <= 14, "{tried:?}");

    // The data's size caps the search; an error other than memory ends it.
    let found = max_batch_by_trial(|b| trainer(&cpu, b), digits(100), 16, 1000, &scale());
    assert_eq!(found.unwrap(), Some(100));
    let broken = |_| Err(kiln::train::Error::Config("a broken trainer".into()));
    assert!(!is_out_of_memory(
        &kiln::train::Error::Config(String::new())
    ));
    let e = max_batch_by_trial::<Cpu, Small<Cpu>>(broken, digits(100), 16, 64, &scale());
    assert!(e.unwrap_err().to_string().contains("broken"));
}

#[test]
fn throughput_is_measured_for_each_size() {
    let cpu = Cpu::with_threads(2).unwrap();
    let sizes = powers_of_two(64)[2..].to_vec();
    assert_eq!(sizes, [4, 8, 16, 32, 64]);
    let measured = throughput(|b| trainer(&cpu, b), digits(640), &sizes, 3, &scale()).unwrap();
    assert_eq!(measured.iter().map(|m| m.batch).collect::<Vec<_>>(), sizes);
    assert!(
        measured.iter().all(|m| m.samples_per_second > 0.0),
        "{measured:?}"
    );
    let best = fastest(&measured).unwrap();
    assert!(
        measured
            .iter()
            .all(|m| m.samples_per_second <= best.samples_per_second)
    );
    println!("{measured:?}, fastest {best:?}");
    // Too little data for the steps asked is an error, not a short measurement.
    let e = throughput(|b| trainer(&cpu, b), digits(100), &[64], 3, &scale()).unwrap_err();
    assert!(e.to_string().contains("needs 256 samples"), "{e}");
}
