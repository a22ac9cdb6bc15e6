//! How the optimisation strategy decides how well a model trains: one small network
//! on the 10,000 MNIST digits that ship inside kiln, trained from the same initial
//! weights on the same batches with two optimizers (plain gradient descent and Adam),
//! each under three learning-rate schedules (constant, step decay, cosine decay, all
//! stepping once a batch), for the same number of epochs. One chart compares the six
//! validation-loss curves.
//!
//! ```text
//! cargo run --release --example schedules -- [--epochs N] [--batch-size N] [--seed N] [--data DIR]
//! ```
//!
//! What it shows with the defaults: gradient descent at 0.1 is still far from
//! converged after 10 epochs, so cutting its rate early costs it; Adam at 0.003 gets
//! there in a few epochs and then jitters, so decaying its rate lands it lower. The
//! same schedule helps one strategy and hurts the other.
//!
//! `--data DIR` reads MNIST-style IDX files from `DIR` instead of the embedded digits.
//! The chart goes to `target/kiln-examples/schedules.png`. The result line gives the
//! test figures of the run with the lowest final validation loss (chosen on
//! validation, not on test), and every run's under `runs`.

use std::time::Instant;

use kiln::data::mnist;
use kiln::data::split::split_dataset;
use kiln::optim::{Algorithm, Constant};
use kiln::prelude::*;
use kiln::train::plot_runs;
use kiln_examples::args::{Args, Device};
use kiln_examples::report::{Json, plot_path, samples_per_second};

kiln::model! {
    /// A digit's 784 pixels, one hidden layer of 64, and the 10 class probabilities:
    /// small enough that six runs take seconds.
    pub struct DigitMlp {
        input: [28, 28, 1],
        flat: Flatten,
        fc1: Dense(64, relu),
        out: Dense(10, softmax),
    }
}

/// Gradient descent's learning rate (no momentum): a common choice for it.
const SGD_RATE: f64 = 0.1;
/// Adam's: three times Keras's default, fast enough to show what a decay adds.
const ADAM_RATE: f64 = 0.003;
/// The schedules, by name.
const SCHEDULES: [&str; 3] = ["constant", "step decay", "cosine decay"];

/// An optimizer of `rule` that starts at `peak` and follows `schedule` over `steps`
/// updates.
fn optimizer(rule: Algorithm, peak: f64, schedule: &str, steps: u64) -> Optimizer<Cpu> {
    let optimizer = Optimizer::new(rule);
    match schedule {
        // Divided by 10 after a third, and again after two thirds, of the updates.
        "step decay" => optimizer.schedule(StepDecay::new(peak, steps.div_ceil(3)).gamma(0.1)),
        "cosine decay" => optimizer.schedule(CosineDecay::new(peak, steps)),
        _ => optimizer.schedule(Constant(peak)),
    }
}

fn main() -> std::process::ExitCode {
    kiln_examples::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse_cpu_only(Args {
        epochs: 10,
        batch_size: 32,
        seed: 1,
        data: None,
        device: Device::Cpu,
    })?;
    let (train_all, test) = match &args.data {
        Some(dir) => mnist::IdxSet::mnist().load_dir(dir)?,
        None => mnist::embedded()?,
    };
    // A stratified fifth of the training digits for validation, with a fixed seed:
    // every run and every `--seed` is measured on the same digits.
    let split = split_dataset(&train_all, 0.2, 0.0, 0, true)?;
    let (train, validation, _) = split.apply(&train_all)?;
    let pipeline = Pipeline::new().scale(1.0 / 255.0);
    println!("{}", <DigitMlp>::summary());
    println!(
        "{} training, {} validation, {} test digits",
        train.len(),
        validation.len(),
        test.len()
    );

    let steps = (args.epochs * train.len().div_ceil(args.batch_size)) as u64;
    let rules = [
        ("SGD", Algorithm::from(Sgd::default()), SGD_RATE),
        ("Adam", Algorithm::from(Adam::default()), ADAM_RATE),
    ];
    let cpu = Cpu::new()?;
    let started = Instant::now();
    let mut runs = Vec::new();
    for (rule_name, rule, peak) in rules {
        for schedule in SCHEDULES {
            let name = format!("{rule_name} {peak}, {schedule}");
            println!("\n{name}");
            // The same seed: the same initial weights and batches for every run.
            let model = DigitMlp::new(&cpu, args.batch_size, args.seed)?;
            let loss = Loss::sparse_categorical_crossentropy();
            let optimizer = optimizer(rule, peak, schedule, steps);
            let mut trainer = Trainer::new(model, loss, optimizer)?.metrics([Metric::Accuracy]);
            // A fixed budget of epochs and no early stopping: the curves compare whole.
            let options = FitOptions::new(args.epochs, args.batch_size)
                .seed(args.seed)
                .pipeline(pipeline.clone())
                .validation_data(validation.clone());
            let history = trainer.fit(train.clone(), options)?;
            let evaluation = trainer.evaluate(test.clone(), args.batch_size, &pipeline)?;
            runs.push((name, history, evaluation));
        }
    }
    let train_seconds = started.elapsed().as_secs_f64();

    let curves: Vec<(&str, &History)> = runs.iter().map(|(n, h, _)| (n.as_str(), h)).collect();
    let plot = plot_path("schedules")?;
    plot_runs(&curves, "val_loss", &plot)?;
    println!("\nvalidation loss of every run: {}", plot.display());

    let final_val_loss = |h: &History| h.last().and_then(|e| e.get("val_loss")).unwrap_or(f64::NAN);
    println!(
        "{:<26} {:>14} {:>10} {:>14}",
        "run", "final val_loss", "test_loss", "test_accuracy"
    );
    let mut per_run = Json::new();
    for (name, history, evaluation) in &runs {
        let val_loss = final_val_loss(history);
        let loss = evaluation.get("loss").unwrap_or(f64::NAN);
        let accuracy = evaluation.get("accuracy").unwrap_or(f64::NAN);
        println!("{name:<26} {val_loss:>14.4} {loss:>10.4} {accuracy:>14.4}");
        per_run = per_run.object(
            name,
            Json::new()
                .number("final_val_loss", val_loss, 4)
                .number("test_loss", loss, 4)
                .number("test_accuracy", accuracy, 4),
        );
    }
    let (best_name, _, best) = runs
        .iter()
        .min_by(|a, b| final_val_loss(&a.1).total_cmp(&final_val_loss(&b.1)))
        .ok_or("no run was trained")?;
    let result = Json::new()
        .number("test_accuracy", best.get("accuracy").unwrap_or(f64::NAN), 4)
        .number("test_loss", best.get("loss").unwrap_or(f64::NAN), 4)
        .text("best_run", best_name)
        .number("train_seconds", train_seconds, 2)
        .number(
            "images_per_second",
            samples_per_second(runs.iter().map(|r| &r.1), train.len()),
            0,
        )
        .object("runs", per_run);
    println!("result: {result}");
    Ok(())
}
