//! Fuel consumption (miles per gallon) from the raw Auto MPG records, as TensorFlow's
//! "basic regression" tutorial trains it: a JSON array of 406 records with `null`
//! cells (8 cars without MPG, 6 without horsepower), the model year as a date, the
//! origin as a word and the car's name as free text. The records are described,
//! cleaned with statistics fitted on the training part only, and the tutorial's
//! model is trained with its loss, optimizer and epochs.
//!
//! ```text
//! cargo run --release --example auto_mpg -- [--epochs N] [--batch-size N] [--seed N] [--data DIR]
//! ```
//!
//! `--data DIR` reads `auto_mpg.json` from `DIR` instead of `examples/data`. The split
//! is fixed; the seed chooses the initial weights and the shuffling. The learning
//! curves go to `target/kiln-examples/auto_mpg.png`, the checkpoint, saved with its
//! cleaning and loaded back to predict on raw records, to
//! `target/kiln-examples/auto_mpg.safetensors`.
//!
//! The tutorial drops the six cars without horsepower; kiln imputes them, so its test
//! part holds every labelled car of the split. `test_mae_complete_rows` is the MAE
//! over the test cars that have a horsepower, the rows the tutorial's Keras program
//! (`examples/python/auto_mpg_keras.py`, on the same split) tests on.

use std::time::Instant;

use kiln::prelude::*;
use kiln_examples::args::{Args, Device};
use kiln_examples::auto_mpg::{self, MpgNet};
use kiln_examples::report::{Json, plot_path, samples_per_second};

/// Raw records as a user would send them: a missing horsepower, an absent model
/// year and an origin the training records never showed.
const RAW_RECORDS: &str = r#"[
  {"Name": "ford pinto", "Cylinders": 4, "Displacement": 122, "Horsepower": null, "Weight_in_lbs": 2310, "Acceleration": 15, "Year": "1974-01-01", "Origin": "USA"},
  {"Name": "kia pride", "Cylinders": 4, "Displacement": 79, "Horsepower": 63, "Weight_in_lbs": 1935, "Acceleration": 16.5, "Origin": "Korea"}
]"#;

fn main() -> std::process::ExitCode {
    kiln_examples::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse_cpu_only(Args {
        epochs: 100,
        batch_size: 32,
        seed: 1,
        data: None,
        device: Device::Cpu,
    })?;
    let tables = auto_mpg::load(&args.data_dir())?;
    println!("{}", tables.raw.describe());
    println!("{}\n", tables.cleaning);
    println!("{}", <MpgNet>::summary());
    println!(
        "{} training, {} validation, {} test cars",
        tables.train.len(),
        tables.validation.len(),
        tables.test.len(),
    );

    let cpu = Cpu::new()?;
    let mut trainer = auto_mpg::trainer(&cpu, args.batch_size, args.seed)?;
    let started = Instant::now();
    let options = auto_mpg::fit_options(&tables, args.epochs, args.batch_size, args.seed);
    let history = trainer.fit(tables.train.clone(), options)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let test = trainer.evaluate(tables.test.clone(), args.batch_size, &Pipeline::new())?;
    let complete = tables.raw_test.drop_missing("Horsepower")?;
    let complete = tables.cleaning.transform(&complete)?;
    let test_complete = trainer.evaluate(complete.clone(), args.batch_size, &Pipeline::new())?;
    let mae = |e: &kiln::train::Evaluation| e.get("mae").unwrap_or(f64::NAN);
    println!(
        "test MAE {:.3} mpg over {} cars; {:.3} over the {} with a horsepower",
        mae(&test),
        tables.test.len(),
        mae(&test_complete),
        complete.len()
    );

    // The model and its cleaning in one file; a fresh model predicts from it alone.
    let saved = plot_path("auto_mpg")?.with_extension("safetensors");
    auto_mpg::save(&saved, trainer.model(), &tables.cleaning)?;
    println!("saved with its cleaning: {}", saved.display());
    let predicted = auto_mpg::predict_raw(&cpu, &saved, RAW_RECORDS.as_bytes())?;
    for (record, mpg) in RAW_RECORDS.lines().skip(1).zip(predicted) {
        let record = record.trim().trim_end_matches(',');
        println!("  {record}\n    -> {mpg:.1} mpg");
    }

    let plot = plot_path("auto_mpg")?;
    kiln::train::plot_history(&history, &plot)?;
    println!("learning curves: {}", plot.display());
    let result = Json::new()
        .number("test_mae", mae(&test), 3)
        .number("test_mae_complete_rows", mae(&test_complete), 3)
        .number("test_rows", tables.test.len() as f64, 0)
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
