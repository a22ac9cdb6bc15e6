//! Penguin species from the raw Palmer Archipelago table (344 penguins, `NA` cells,
//! the island and the sex as words): the table described as pandas' `describe()`
//! does, cleaned with statistics fitted on the training part only, a small softmax
//! classifier, then the model saved with its cleaning and loaded back to predict
//! on raw rows, missing cells and all.
//!
//! ```text
//! cargo run --release --example penguins -- [--epochs N] [--batch-size N] [--seed N] [--data DIR]
//! ```
//!
//! `--data DIR` reads `penguins.csv` from `DIR` instead of `examples/data`. The split
//! is fixed (stratified, 60 / 20 / 20); the seed chooses the initial weights and the
//! shuffling. The learning curves go to `target/kiln-examples/penguins.png`, the
//! checkpoint to `target/kiln-examples/penguins.safetensors`.

use std::time::Instant;

use kiln::prelude::*;
use kiln_examples::args::{Args, Device};
use kiln_examples::penguins::{self, PenguinNet};
use kiln_examples::report::{Json, plot_path, samples_per_second};

/// Raw rows as a user would send them: a missing sex, a missing measurement and
/// sex, and an island the training rows never showed.
const RAW_ROWS: &str = "island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex
Biscoe,48.7,15.1,222,5350,NA
Dream,49.0,NA,195,3600,NA
Atlantis,38.6,21.2,191,3800,male
";

fn main() -> std::process::ExitCode {
    kiln_examples::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse_cpu_only(Args {
        epochs: 40,
        batch_size: 16,
        seed: 1,
        data: None,
        device: Device::Cpu,
    })?;
    let tables = penguins::load(&args.data_dir())?;
    println!("{}", tables.raw.describe());
    println!("{}\n", tables.cleaning);
    println!("{}", <PenguinNet>::summary());
    println!(
        "{} training, {} validation, {} test penguins (Adelie, Chinstrap, Gentoo: {:?} in training)",
        tables.train.len(),
        tables.validation.len(),
        tables.test.len(),
        tables.train.class_counts(),
    );

    let cpu = Cpu::new()?;
    let mut trainer = penguins::trainer(&cpu, args.batch_size, args.seed)?;
    let started = Instant::now();
    let options = penguins::fit_options(&tables, args.epochs, args.batch_size, args.seed);
    let history = trainer.fit(tables.train.clone(), options)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let test = trainer.evaluate(tables.test.clone(), args.batch_size, &Pipeline::new())?;

    // The model and its cleaning in one file; a fresh model predicts from it alone.
    let saved = plot_path("penguins")?.with_extension("safetensors");
    penguins::save(&saved, trainer.model(), &tables.cleaning)?;
    println!("saved with its cleaning: {}", saved.display());
    for (row, (species, p)) in
        RAW_ROWS
            .lines()
            .skip(1)
            .zip(penguins::predict_raw(&cpu, &saved, RAW_ROWS.as_bytes())?)
    {
        println!("  {row:<36} -> {species} ({p:.3})");
    }

    let plot = plot_path("penguins")?;
    kiln::train::plot_history(&history, &plot)?;
    println!("learning curves: {}", plot.display());
    let figure = |name: &str| test.get(name).unwrap_or(f64::NAN);
    let result = Json::new()
        .number("test_accuracy", figure("accuracy"), 4)
        .number("test_loss", figure("loss"), 4)
        .number("features", tables.cleaning.width() as f64, 0)
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
