//! Binary classification of breast tumours (malignant or benign) from 30 measurements
//! of the Wisconsin diagnostic table: standardised features, one sigmoid output,
//! binary cross-entropy, Adam, and early stopping on the validation loss that keeps
//! the best epoch's weights. It reaches about 97 % test accuracy in under a second on
//! the CPU.
//!
//! ```text
//! cargo run --release --example binary_classification -- [--epochs N] [--batch-size N] [--seed N] [--data DIR]
//! ```
//!
//! `--data DIR` reads `breast_cancer.csv` from `DIR` instead of `examples/data`. The
//! split is fixed; the seed chooses the initial weights, the dropout masks and the
//! shuffling. The learning curves go to
//! `target/kiln-examples/binary_classification.png`.

use std::time::Instant;

use kiln::prelude::*;
use kiln_examples::args::{Args, Device};
use kiln_examples::breast_cancer::{self, CancerNet};
use kiln_examples::report::{Json, plot_path, samples_per_second};

fn main() -> std::process::ExitCode {
    kiln_examples::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse_cpu_only(Args {
        epochs: 100,
        batch_size: 16,
        seed: 1,
        data: None,
        device: Device::Cpu,
    })?;
    let tables = breast_cancer::load(&args.data_dir())?;
    println!("{}", <CancerNet>::summary());
    println!(
        "{} training, {} validation, {} test tumours (malignant, benign: {:?} in training)",
        tables.train.len(),
        tables.validation.len(),
        tables.test.len(),
        tables.train.class_counts(),
    );

    let cpu = Cpu::new()?;
    let optimizer = Optimizer::new(Adam::default());
    let mut trainer = breast_cancer::trainer(&cpu, args.batch_size, args.seed, optimizer)?;
    let started = Instant::now();
    let options = breast_cancer::fit_options(&tables, args.epochs, args.batch_size, args.seed);
    let history = trainer.fit(tables.train.clone(), options)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let test = trainer.evaluate(tables.test.clone(), args.batch_size, &tables.pipeline)?;
    if let Some(confusion) = test.confusion.as_ref().filter(|c| c.classes == 2) {
        println!(
            "test: {} malignant and {} benign right, {} malignant called benign, {} benign called malignant",
            confusion.get(0, 0),
            confusion.get(1, 1),
            confusion.get(0, 1),
            confusion.get(1, 0),
        );
    }

    let plot = plot_path("binary_classification")?;
    kiln::train::plot_history(&history, &plot)?;
    println!("learning curves: {}", plot.display());
    let figure = |name: &str| test.get(name).unwrap_or(f64::NAN);
    let result = Json::new()
        .number("test_accuracy", figure("accuracy"), 4)
        .number("test_loss", figure("loss"), 4)
        .number("test_precision", figure("precision"), 4)
        .number("test_recall", figure("recall"), 4)
        .number("epochs", history.epochs.len() as f64, 0)
        .number("train_seconds", train_seconds, 2)
        .number(
            "images_per_second",
            samples_per_second([&history], tables.train.len()),
            0,
        );
    println!("result: {result}");
    Ok(())
}
