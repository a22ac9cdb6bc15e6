//! The seed program: the Keras CIFAR-10 tutorial, written with kiln.
//!
//! Three Conv2D(32/64/128, 3x3, relu) + MaxPool(2) blocks, Flatten, Dense(128, relu),
//! Dense(10, softmax); Adam with Keras's defaults; sparse categorical cross-entropy on
//! the softmax output; accuracy; 10 epochs of batches of 64, with the test set as
//! validation data.
//!
//! ```text
//! cargo run --release --example cifar10_cnn -- [--epochs N] [--batch-size N] [--seed N] [--data DIR]
//! ```
//!
//! Without `--data`, CIFAR-10 is downloaded like Keras's `cifar10.load_data()` (into
//! `KILN_DATA_DIR`, else the user's cache folder, verified and reused). `--data DIR`
//! reads the binary version's files (`data_batch_1.bin` .. `test_batch.bin`, plain or
//! gzipped) from `DIR`.

use std::sync::Arc;
use std::time::Instant;

use kiln::data::cifar;
use kiln::prelude::*;
use kiln_examples::args::Args;

kiln::model! {
    /// The CNN of the Keras CIFAR-10 tutorial.
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

fn main() -> std::process::ExitCode {
    kiln_examples::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse(Args {
        epochs: 10,
        batch_size: 64,
        seed: 1,
        data: None,
    })?;
    // (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    let loading = Instant::now();
    let (train, test) = match &args.data {
        Some(dir) => cifar::load_dir(dir)?,
        None => cifar::load_data()?,
    };
    // Shared, not copied: the batchers read the same bytes.
    let (train, test) = (Arc::new(train), Arc::new(test));
    println!(
        "CIFAR-10: {} training and {} test images, loaded in {:.1}s",
        train.len(),
        test.len(),
        loading.elapsed().as_secs_f64()
    );
    // x_train, x_test = x_train / 255.0, x_test / 255.0
    let pipeline = Pipeline::new().scale(1.0 / 255.0);

    let cpu = Cpu::new()?;
    let model = SeedCnn::new(&cpu, args.batch_size, args.seed)?;
    println!("{}", <SeedCnn>::summary());
    // model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    let mut trainer = Trainer::new(
        model,
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()),
    )?
    .metrics([Metric::Accuracy]);
    // model.fit(x_train, y_train, epochs=10, batch_size=64, validation_data=(x_test, y_test))
    let started = Instant::now();
    let history = trainer.fit(
        Arc::clone(&train),
        FitOptions::new(args.epochs, args.batch_size)
            .seed(args.seed)
            .pipeline(pipeline.clone())
            .validation_data(Arc::clone(&test)),
    )?;
    let train_seconds = started.elapsed().as_secs_f64();
    // model.evaluate(x_test, y_test)
    let evaluation = trainer.evaluate(Arc::clone(&test), args.batch_size, &pipeline)?;

    let plot = std::path::Path::new("target/kiln-examples/cifar10_cnn.png");
    std::fs::create_dir_all(plot.parent().unwrap_or(std::path::Path::new(".")))?;
    kiln::train::plot_history(&history, plot)?;
    println!("learning curves: {}", plot.display());
    let fit_seconds: f64 = history.epochs.iter().map(|e| e.seconds).sum();
    println!(
        "result: {{\"test_accuracy\": {:.4}, \"test_loss\": {:.4}, \"train_seconds\": {:.2}, \"images_per_second\": {:.0}, \"peak_memory_mib\": {:.0}}}",
        evaluation.get("accuracy").unwrap_or(f64::NAN),
        evaluation.get("loss").unwrap_or(f64::NAN),
        train_seconds,
        (history.epochs.len() * train.len()) as f64 / fit_seconds.max(1e-9),
        kiln_examples::report::peak_memory_mib().unwrap_or(f64::NAN),
    );
    Ok(())
}
