//! The same model and the same `fit` on the GPU (a build with `--features cuda`): one
//! epoch on the digits that ship with kiln learns as it does on the CPU, a step that
//! fails on the device (a non-finite output or gradient) stops the run without
//! changing a weight, a steady-state training step allocates no device memory, and a
//! model of batch normalisation, residual and concatenated blocks gives the CPU's
//! outputs and gradients.
//! Without a GPU each test says that it skipped.

#![cfg(feature = "cuda")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::sync::Arc;

use kiln::data::{Dataset, InMemory};
use kiln::prelude::*;

kiln::model! {
    /// The quickstart's network: the seed's three Conv2D + MaxPool blocks on 28x28 digits.
    pub struct DigitCnn {
        input: [28, 28, 1],
        conv1: Conv2d(32, 3, relu, padding = same),
        pool1: MaxPool2d(2),
        conv2: Conv2d(64, 3, relu, padding = same),
        pool2: MaxPool2d(2),
        conv3: Conv2d(128, 3, relu, padding = same),
        pool3: MaxPool2d(2),
        flat: Flatten,
        drop: Dropout(0.25),
        fc1: Dense(128, relu),
        out: Dense(10, softmax),
    }
}

fn gpu() -> Option<Cuda> {
    match Cuda::new(0) {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "skipped: no CUDA device ({e})");
            None
        }
    }
}

/// Test accuracy and loss after one epoch of `fit` on `backend`, from seed 1.
fn one_epoch<B: Backend>(backend: &B, train: &Arc<InMemory>, test: &Arc<InMemory>) -> (f64, f64) {
    let model = DigitCnn::new(backend, 64, 1).unwrap();
    let mut trainer = Trainer::new(
        model,
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()),
    )
    .unwrap()
    .metrics([Metric::Accuracy]);
    let scale = Pipeline::new().scale(1.0 / 255.0);
    let options = FitOptions::new(1, 64)
        .seed(1)
        .pipeline(scale.clone())
        .verbose(Verbosity::Silent);
    trainer.fit(Arc::clone(train), options).unwrap();
    let eval = trainer.evaluate(Arc::clone(test), 256, &scale).unwrap();
    (eval.get("accuracy").unwrap(), eval.get("loss").unwrap())
}

#[test]
fn one_epoch_on_the_gpu_learns_as_on_the_cpu() {
    let Some(gpu) = gpu() else {
        return;
    };
    let (train, test) = kiln::data::mnist::embedded().unwrap();
    let (train, test) = (Arc::new(train), Arc::new(test));
    let cpu = Cpu::new().unwrap();
    let (cpu_accuracy, cpu_loss) = one_epoch(&cpu, &train, &test);
    let (gpu_accuracy, gpu_loss) = one_epoch(&gpu, &train, &test);
    let _ = writeln!(
        std::io::stderr(),
        "one epoch on {} digits: cpu accuracy {cpu_accuracy:.4} loss {cpu_loss:.4}, \
         {} accuracy {gpu_accuracy:.4} loss {gpu_loss:.4}",
        train.len(),
        gpu.name()
    );
    // The same data, order, initial weights and dropout masks; only the summation
    // order of the kernels differs, which moves the result by much less than a seed.
    assert!(
        gpu_accuracy > 0.9,
        "the GPU run did not learn: {gpu_accuracy}"
    );
    assert!(
        (gpu_accuracy - cpu_accuracy).abs() < 0.02,
        "cpu {cpu_accuracy}, gpu {gpu_accuracy}"
    );
    assert!(
        (gpu_loss - cpu_loss).abs() < 0.05,
        "cpu {cpu_loss}, gpu {gpu_loss}"
    );
}

#[test]
fn a_steady_state_step_allocates_no_device_memory() {
    let Some(gpu) = gpu() else {
        return;
    };
    let batch = 32;
    let mut model = DigitCnn::new(&gpu, batch, 1).unwrap();
    let images: Vec<f32> = (0..batch * 28 * 28)
        .map(|i| (i as f32 * 0.01).sin())
        .collect();
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let mut criterion = model
        .criterion(Loss::sparse_categorical_crossentropy())
        .unwrap();
    let mut optimizer = Optimizer::new(Adam::default());
    let mut step = |model: &mut DigitCnn<Cuda>| {
        let output = model.forward_host(&images, Mode::Train).unwrap();
        criterion
            .launch(&output, BatchTargets::Labels(&labels), None)
            .unwrap();
        model.zero_grad().unwrap();
        model
            .backward(criterion.gradient(), criterion.grad_at())
            .unwrap();
        optimizer.step(model).unwrap();
        assert!(criterion.value().unwrap().is_finite());
    };
    // The first step compiles the kernels and allocates the optimizer's state.
    step(&mut model);
    let before = gpu.allocations();
    for _ in 0..5 {
        step(&mut model);
    }
    assert_eq!(
        gpu.allocations(),
        before,
        "device allocations in 5 steady steps"
    );
}

kiln::model! {
    /// A small regressor on the digits, for the failing runs below.
    pub struct DigitRegressor {
        input: [28, 28, 1],
        conv: Conv2d(filters = 8, kernel = 3, stride = 2, activation = relu),
        pool: MaxPool2d(2),
        flat: Flatten,
        out: Dense(1),
    }
}

/// `fit` for one epoch on the digits, every target `target` and the pixels scaled by
/// `scale`, on the GPU, which must fail: returns the error and whether any weight
/// changed.
fn failing_fit(gpu: &Cuda, target: f32, scale: f32) -> (kiln::train::Error, bool) {
    let (train, _) = kiln::data::mnist::embedded().unwrap();
    let (shape, inputs, _) = train.into_parts();
    let n = inputs.len() / shape.iter().product::<usize>();
    let train = InMemory::new(
        shape,
        inputs,
        kiln::data::Targets::Real {
            values: vec![target; n],
            width: 1,
        },
    )
    .unwrap();
    let model = DigitRegressor::new(gpu, 32, 3).unwrap();
    let mut trainer = Trainer::new(
        model,
        Loss::mean_squared_error(),
        Optimizer::new(Sgd::default()),
    )
    .unwrap();
    let before = kiln::train::Weights::of(trainer.model()).unwrap();
    let options = FitOptions::new(1, 32)
        .pipeline(Pipeline::new().scale(scale))
        .verbose(Verbosity::Silent);
    let err = trainer.fit(train, options).unwrap_err();
    let after = kiln::train::Weights::of(trainer.model()).unwrap();
    let changed = before
        .iter()
        .zip(after.iter())
        .any(|((_, _, x), (_, _, y))| x != y);
    (err, changed)
}

#[test]
fn a_failing_step_on_the_gpu_changes_no_weight() {
    let Some(gpu) = gpu() else {
        return;
    };
    // The squared error's gradient overflows (targets near f32::MAX) while the
    // outputs stay finite: found on the device, the update skipped there.
    let (err, changed) = failing_fit(&gpu, 3.0e38, 1.0 / 255.0);
    assert!(
        err.to_string()
            .contains("went non-finite first in layer `out`"),
        "{err}"
    );
    assert!(!changed, "a weight changed");
    // Pixels scaled past f32::MAX: the output is not finite.
    let (err, changed) = failing_fit(&gpu, 1.0, 1.0e37);
    assert!(err.to_string().contains("output for sample"), "{err}");
    assert!(!changed, "a weight changed");
}

kiln::model! {
    /// Batch normalisation, residual blocks (identity and projection shortcuts, the
    /// sum written over the branch) and a concatenation whose input feeds three
    /// branches.
    pub struct Blocks {
        input: [12, 12, 3],
        stem: Conv2d(8, 3, padding = same),
        bn: BatchNorm(relu),
        res1: Residual(activation = relu) {
            a: Conv2d(8, 3, padding = same, activation = relu),
            b: Conv2d(8, 3, padding = same),
            norm: BatchNorm(convention = pytorch),
        },
        res2: Residual(activation = relu) {
            a: Conv2d(16, 3, stride = 2, padding = same, activation = relu),
            b: Conv2d(16, 3, padding = same),
            shortcut: Conv2d(16, 1, stride = 2),
        },
        mix: Concat {
            one: Conv2d(4, 1),
            three: Conv2d(4, 3, padding = same, activation = tanh),
            skip: Identity,
        },
        gap: GlobalAvgPool2d,
        out: Dense(10, softmax),
    }
}

/// The output, the input's gradient and every parameter gradient of `Blocks` with
/// the weights of seed 3, for one batch.
fn blocks_run<B: Backend>(backend: &B) -> (Vec<f32>, Vec<f32>, Vec<Vec<f32>>) {
    let batch = 6;
    let mut model = Blocks::new(backend, batch, 3).unwrap();
    let images: Vec<f32> = (0..batch * 12 * 12 * 3)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    let x = Tensor::<Rank3<12, 12, 3>, B>::from_slice(backend, batch, &images).unwrap();
    let g: Vec<f32> = (0..batch * 10).map(|i| (i as f32 * 0.11).cos()).collect();
    let grad = Tensor::<Rank1<10>, B>::from_slice(backend, batch, &g).unwrap();
    let y = model
        .forward(&x, Mode::Train)
        .unwrap()
        .to_vec(backend)
        .unwrap();
    let mut dx = Tensor::<Rank3<12, 12, 3>, B>::zeros(backend, batch).unwrap();
    model.zero_grad().unwrap();
    model
        .backward_to_input(&grad, GradAt::Output, &mut dx)
        .unwrap();
    let mut grads = Vec::new();
    model
        .parameters(&mut |p| {
            grads.push(backend.to_host(p.grad, p.shape.size())?);
            Ok(())
        })
        .unwrap();
    (y, dx.to_vec(backend).unwrap(), grads)
}

#[test]
fn blocks_on_the_gpu_give_the_cpus_outputs_and_gradients() {
    let Some(gpu) = gpu() else {
        return;
    };
    let cpu = Cpu::new().unwrap();
    let (y_cpu, dx_cpu, g_cpu) = blocks_run(&cpu);
    let (y_gpu, dx_gpu, g_gpu) = blocks_run(&gpu);
    let close = |what: &str, a: &[f32], b: &[f32]| {
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * scale,
                "{what}[{i}]: cpu {a}, gpu {b}"
            );
        }
    };
    close("output", &y_cpu, &y_gpu);
    close("input gradient", &dx_cpu, &dx_gpu);
    for (t, (a, b)) in g_cpu.iter().zip(&g_gpu).enumerate() {
        close(&format!("tensor {t}"), a, b);
    }
}
