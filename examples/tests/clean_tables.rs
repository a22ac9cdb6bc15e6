//! The recipes of the `penguins` and `auto_mpg` examples, on the raw tables that ship
//! in `examples/data`: each, trained briefly, must clearly beat the answer that
//! needs no learning; the Auto MPG split must be the one the Keras program
//! recomputes; a penguins model and an Auto MPG model saved with their cleaning
//! must predict the same for raw rows (CSV) and raw records (JSON) in a fresh process
//! as in the one that trained them; and bad files are errors naming the column and
//! the row.

use std::process::Command;

use kiln::data::split::split;
use kiln::prelude::*;
use kiln_examples::args::default_data_dir;
use kiln_examples::{auto_mpg, penguins};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const BATCH: usize = 16;
const SEED: u64 = 1;

/// Raw rows with a missing sex, missing measurements and an unseen island.
const RAW_ROWS: &[u8] = b"island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex
Biscoe,48.7,15.1,222,5350,NA
Dream,49.0,NA,195,3600,NA
Atlantis,38.6,21.2,191,3800,male
Torgersen,NA,NA,NA,NA,NA
";

/// Raw records with a missing horsepower, an absent year and an unseen origin.
const RAW_RECORDS: &[u8] = br#"[
 {"Name": "ford pinto", "Cylinders": 4, "Displacement": 122, "Horsepower": null,
  "Weight_in_lbs": 2310, "Acceleration": 15, "Year": "1974-01-01", "Origin": "USA"},
 {"Name": "kia pride", "Cylinders": 4, "Displacement": 79, "Horsepower": 63,
  "Weight_in_lbs": 1935, "Acceleration": 16.5, "Origin": "Korea"},
 {"Name": "chevrolet impala", "Cylinders": 8, "Displacement": 454, "Horsepower": 220,
  "Weight_in_lbs": 4354, "Acceleration": 9, "Year": "1970-01-01", "Origin": "USA"}
]"#;

/// Set in the child process: the checkpoint to predict from.
const CHILD: &str = "KILN_TEST_PENGUINS_CHECKPOINT";

/// Set in the child process: the Auto MPG checkpoint to predict from.
const MPG_CHILD: &str = "KILN_TEST_AUTO_MPG_CHECKPOINT";

#[test]
fn penguins_recipe_beats_the_majority_class() -> TestResult {
    let tables = penguins::load(&default_data_dir())?;
    assert_eq!(tables.raw.len(), 344);
    let cpu = Cpu::new()?;
    let mut trainer = penguins::trainer(&cpu, BATCH, SEED)?;
    let options = penguins::fit_options(&tables, 15, BATCH, SEED).verbose(Verbosity::Silent);
    trainer.fit(tables.train.clone(), options)?;
    let test = trainer.evaluate(tables.test.clone(), BATCH, &Pipeline::new())?;
    let accuracy = test.get("accuracy").ok_or("no accuracy was reported")?;
    let counts = tables.test.class_counts();
    let majority = counts.iter().copied().max().unwrap_or(0) as f64 / tables.test.len() as f64;
    assert!(majority < 0.5, "Adelie are 44 % of the table: {counts:?}");
    assert!(
        accuracy > 0.9,
        "test accuracy {accuracy:.4} after 15 epochs; the majority class gives {majority:.4}"
    );
    Ok(())
}

#[test]
fn auto_mpg_recipe_beats_predicting_the_mean() -> TestResult {
    let tables = auto_mpg::load(&default_data_dir())?;
    assert_eq!((tables.raw.len(), tables.test.len()), (406, 80));
    // `examples/python/auto_mpg_keras.py` prints the same first test rows.
    let parts = split(
        398,
        auto_mpg::VALIDATION,
        auto_mpg::TEST,
        auto_mpg::SPLIT_SEED,
    )?;
    assert_eq!(parts.test[..8], [2, 4, 7, 8, 11, 19, 24, 48]);
    assert_eq!((parts.train.len(), parts.validation.len()), (254, 64));

    let cpu = Cpu::new()?;
    let mut trainer = auto_mpg::trainer(&cpu, 32, SEED)?;
    let options = auto_mpg::fit_options(&tables, 30, 32, SEED).verbose(Verbosity::Silent);
    trainer.fit(tables.train.clone(), options)?;
    let test = trainer.evaluate(tables.test.clone(), 32, &Pipeline::new())?;
    let mae = test.get("mae").ok_or("no MAE was reported")?;
    let (train_y, test_y) = (targets(&tables.train), targets(&tables.test));
    let mean = train_y.iter().sum::<f64>() / train_y.len() as f64;
    let baseline = test_y.iter().map(|y| (y - mean).abs()).sum::<f64>() / test_y.len() as f64;
    assert!(
        (4.0..10.0).contains(&baseline),
        "predicting the mean misses by some miles per gallon, not {baseline:.2}"
    );
    assert!(
        mae < 0.6 * baseline,
        "test MAE {mae:.2} mpg after 30 epochs; predicting the training mean gives {baseline:.2}"
    );
    Ok(())
}

#[test]
fn bad_tables_are_errors_naming_the_column_and_the_row() -> TestResult {
    let dir = std::env::temp_dir().join(format!("kiln-bad-tables-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let error = |result: kiln::train::Result<kiln_examples::cleaned::Cleaned>| {
        result.err().map(|e| e.to_string()).unwrap_or_default()
    };
    // A stray word in a number column.
    let table = std::fs::read_to_string(default_data_dir().join(penguins::FILE))?;
    let stray: String = table
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut fields: Vec<&str> = l.split(',').collect();
            if i == 49 {
                fields[2] = "heavy"; // bill_length_mm on line 50
            }
            fields.join(",") + "\n"
        })
        .collect();
    std::fs::write(dir.join(penguins::FILE), stray)?;
    let err = error(penguins::load(&dir));
    assert!(
        err.contains("penguins.csv:50: column `bill_length_mm`, row 49: `heavy` is not a number"),
        "{err}"
    );
    // Records without a single target, and JSON that is not records.
    let records = br#"[{"Miles_per_Gallon": null, "Cylinders": 8, "Origin": "USA"},
 {"Cylinders": 4, "Origin": "Japan"}]"#;
    std::fs::write(dir.join(auto_mpg::FILE), records)?;
    let err = error(auto_mpg::load(&dir));
    assert!(
        err.ends_with(
            "auto_mpg.json: column `Miles_per_Gallon`: every one of the 2 records misses it: \
             nothing to train on"
        ),
        "{err}"
    );
    std::fs::write(
        dir.join(auto_mpg::FILE),
        br#"{"Miles_per_Gallon": [18, 15]}"#,
    )?;
    let err = error(auto_mpg::load(&dir));
    assert!(
        err.contains("auto_mpg.json: is not an array of records"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The `prediction: ` lines that test `name`, run again in a child process with
/// `variable` set to `path`, prints.
fn in_a_fresh_process(
    name: &str,
    variable: &str,
    path: &std::path::Path,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let output = Command::new(std::env::current_exe()?)
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(variable, path)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The harness may print the test's name on the line of the first prediction.
    Ok(stdout
        .lines()
        .filter_map(|l| l.split_once("prediction: "))
        .map(|(_, p)| format!("prediction: {p}"))
        .collect())
}

#[test]
fn a_saved_mpg_model_predicts_raw_records_in_a_fresh_process() -> TestResult {
    let cpu = Cpu::new()?;
    let show = |mpg: &[f32]| -> Vec<String> {
        mpg.iter().map(|m| format!("prediction: {m:.6}")).collect()
    };
    if let Ok(path) = std::env::var(MPG_CHILD) {
        // The child: everything from the checkpoint.
        let mpg = auto_mpg::predict_raw(&cpu, path.as_ref(), RAW_RECORDS)?;
        assert_eq!(mpg.len(), 3);
        for line in show(&mpg) {
            println!("{line}");
        }
        return Ok(());
    }
    let tables = auto_mpg::load(&default_data_dir())?;
    let mut trainer = auto_mpg::trainer(&cpu, 32, SEED)?;
    let options = auto_mpg::fit_options(&tables, 30, 32, SEED).verbose(Verbosity::Silent);
    trainer.fit(tables.train.clone(), options)?;
    let path =
        std::env::temp_dir().join(format!("kiln-auto-mpg-{}.safetensors", std::process::id()));
    auto_mpg::save(&path, trainer.model(), &tables.cleaning)?;
    let here = auto_mpg::predict_raw(&cpu, &path, RAW_RECORDS)?;
    assert!(
        here[1] > here[0] && here[0] > here[2],
        "a light four-cylinder car goes further than a heavier one, and than a V8: {here:?}"
    );
    let there = in_a_fresh_process(
        "a_saved_mpg_model_predicts_raw_records_in_a_fresh_process",
        MPG_CHILD,
        &path,
    );
    let _ = std::fs::remove_file(&path);
    assert_eq!(there?, show(&here), "the fresh process predicts otherwise");
    Ok(())
}

fn targets(data: &kiln::data::InMemory) -> Vec<f64> {
    match data.targets() {
        kiln::data::Targets::Real { values, .. } => values.iter().map(|&v| f64::from(v)).collect(),
        kiln::data::Targets::Classes { .. } => Vec::new(),
    }
}

/// The predictions as the child prints them, one `species probability` a line.
fn lines(predictions: &[(String, f32)]) -> Vec<String> {
    predictions
        .iter()
        .map(|(species, p)| format!("prediction: {species} {p:.6}"))
        .collect()
}

#[test]
fn a_saved_model_predicts_raw_rows_in_a_fresh_process() -> TestResult {
    let cpu = Cpu::new()?;
    if let Ok(path) = std::env::var(CHILD) {
        // The child: everything from the checkpoint.
        let predictions = penguins::predict_raw(&cpu, path.as_ref(), RAW_ROWS)?;
        assert_eq!(predictions.len(), 4);
        for line in lines(&predictions) {
            println!("{line}");
        }
        return Ok(());
    }
    let tables = penguins::load(&default_data_dir())?;
    let mut trainer = penguins::trainer(&cpu, BATCH, SEED)?;
    let options = penguins::fit_options(&tables, 15, BATCH, SEED).verbose(Verbosity::Silent);
    trainer.fit(tables.train.clone(), options)?;
    let path =
        std::env::temp_dir().join(format!("kiln-penguins-{}.safetensors", std::process::id()));
    penguins::save(&path, trainer.model(), &tables.cleaning)?;
    let here = penguins::predict_raw(&cpu, &path, RAW_ROWS)?;
    assert_eq!(
        here[0].0, "Gentoo",
        "a long flipper and a heavy body: {here:?}"
    );

    let there = in_a_fresh_process(
        "a_saved_model_predicts_raw_rows_in_a_fresh_process",
        CHILD,
        &path,
    );
    let _ = std::fs::remove_file(&path);
    let there = there?;
    assert_eq!(there, lines(&here), "the fresh process predicts otherwise");
    Ok(())
}
