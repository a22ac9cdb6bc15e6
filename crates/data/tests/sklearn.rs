//! Table cleaning against scikit-learn: the imputed values, the encodings, the
//! clipping bounds, the Yeo-Johnson exponent and the standardised (or min-max)
//! matrix of the penguins and Auto MPG tables equal scikit-learn's within 1e-6
//! (one case standardises the one-hot columns too, as Keras's `Normalization`).
//!
//! The expected values are in `tests/sklearn/`, written by `clean_tables.py` there
//! (which says how to run it); each case fits on the rows whose index is not a
//! multiple of 5 and transforms every row.

mod common;

use std::path::{Path, PathBuf};

use kiln_data::clean::{FittedPipeline, Role};
use kiln_data::frame::{Frame, Kind, ReadOptions};
use kiln_data::{Encoding, Impute, TablePipeline, Unknown};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TOLERANCE: f64 = 1e-6;

fn expected_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sklearn")
}

/// The rows the cases fit on: those whose index is not a multiple of 5.
fn training_part(frame: &Frame) -> kiln_data::Result<Frame> {
    let rows: Vec<usize> = (0..frame.len()).filter(|i| i % 5 != 0).collect();
    frame.select(&rows)
}

/// scikit-learn's feature names and matrix (row after row) for `case`.
fn expected_matrix(case: &str) -> kiln_data::Result<(Vec<String>, Vec<f64>)> {
    let frame = Frame::read_csv(
        expected_dir().join(format!("{case}.csv.gz")),
        &ReadOptions::new(),
    )?;
    let names = frame.names().iter().map(|n| n.to_string()).collect();
    let mut matrix = vec![0.0; frame.len() * frame.columns().len()];
    let width = frame.columns().len();
    for (j, c) in frame.columns().iter().enumerate() {
        for (i, v) in c.numbers().unwrap_or_default().iter().enumerate() {
            matrix[i * width + j] = v.unwrap_or(f64::NAN);
        }
    }
    Ok((names, matrix))
}

/// `(column, fill)` pairs of `case`, as text.
fn expected_fills(case: &str) -> kiln_data::Result<Vec<(String, String)>> {
    let options = ReadOptions::new()
        .missing(Vec::<String>::new())
        .kind("column", Kind::Text)
        .kind("fill", Kind::Text);
    let frame = Frame::read_csv(expected_dir().join(format!("{case}_fill.csv")), &options)?;
    let text = |name: &str| -> Vec<String> {
        frame
            .column(name)
            .and_then(|c| c.strings())
            .unwrap_or_default()
            .iter()
            .map(|s| s.clone().unwrap_or_default())
            .collect()
    };
    Ok(text("column").into_iter().zip(text("fill")).collect())
}

/// The fill of `column` (`Year.year` for a date's part) as text, or its number.
fn fill_of(fitted: &FittedPipeline, column: &str) -> Option<Result<f64, String>> {
    let (name, part) = column.split_once('.').unwrap_or((column, ""));
    match (&fitted.column(name)?.role, part) {
        (Role::Number(s), "") => Some(Ok(s.fill)),
        (Role::Date { year, .. }, "year") => Some(Ok(year.fill)),
        (Role::Date { day_of_year, .. }, "day_of_year") => Some(Ok(day_of_year.fill)),
        (Role::Category(s), "") => Some(Err(s.fill.clone())),
        _ => None,
    }
}

/// Fits `pipeline` on the training part of `frame` and compares it with `case`.
fn check(case: &str, frame: &Frame, pipeline: &TablePipeline) -> TestResult {
    let fitted = pipeline.fit(&training_part(frame)?)?;
    let (names, want) = expected_matrix(case)?;
    assert_eq!(fitted.feature_names(), names, "{case}: the features");
    let got = fitted.values(frame)?;
    assert_eq!(got.len(), want.len(), "{case}: the matrix's size");
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < TOLERANCE, "{case}: the matrix differs by {worst:e}");
    // What a model receives, in f32.
    let inputs = fitted.inputs(frame)?;
    let floats = inputs.floats().unwrap_or_default();
    let worst32 = floats
        .iter()
        .zip(&want)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst32 < TOLERANCE,
        "{case}: the f32 inputs differ by {worst32:e}"
    );
    for (column, fill) in expected_fills(case)? {
        if column.ends_with(".lambda") || column.ends_with(".low") || column.ends_with(".high") {
            continue;
        }
        match fill_of(&fitted, &column).ok_or(format!("{case}: no fill for {column}"))? {
            Ok(x) => {
                let want: f64 = fill.parse()?;
                assert!(
                    (x - want).abs() < TOLERANCE,
                    "{case}: {column} is filled with {x}, scikit-learn's {want}"
                );
            }
            Err(category) => assert_eq!(category, fill, "{case}: {column}'s fill"),
        }
    }
    eprintln!(
        "{case}: {} x {} within {worst:.1e} (f64) and {worst32:.1e} (f32) of scikit-learn",
        got.len() / names.len().max(1),
        names.len()
    );
    Ok(())
}

fn penguins(test: &str) -> kiln_data::Result<Option<Frame>> {
    common::shared_data(test)
        .map(|dir| Frame::read_csv(dir.join("tabular/penguins.csv"), &ReadOptions::new()))
        .transpose()
}

fn auto_mpg(test: &str) -> kiln_data::Result<Option<Frame>> {
    common::shared_data(test)
        .map(|dir| {
            Frame::read_json(dir.join("tabular/auto_mpg.json"), &ReadOptions::new())?
                .drop_missing("Miles_per_Gallon")
        })
        .transpose()
}

fn penguin_pipeline() -> TablePipeline {
    TablePipeline::new("species")
        .drop_columns(["year"])
        .unknown(Unknown::Error)
}

#[test]
fn penguins_mean_indicators_one_hot_standardised() -> TestResult {
    let Some(frame) = penguins("penguins_mean_indicators_one_hot_standardised")? else {
        return Ok(());
    };
    let pipeline = penguin_pipeline()
        .impute(Impute::Mean)
        .missing_indicators()
        .standardize();
    check("penguins_mean_one_hot", &frame, &pipeline)
}

#[test]
fn penguins_most_frequent_ordinal_min_max() -> TestResult {
    let Some(frame) = penguins("penguins_most_frequent_ordinal_min_max")? else {
        return Ok(());
    };
    let pipeline = penguin_pipeline()
        .impute(Impute::MostFrequent)
        .encode(Encoding::Ordinal)
        .min_max();
    check("penguins_most_frequent_ordinal", &frame, &pipeline)
}

#[test]
fn penguins_constant_fills() -> TestResult {
    let Some(frame) = penguins("penguins_constant_fills")? else {
        return Ok(());
    };
    let pipeline = penguin_pipeline()
        .impute(Impute::Constant(0.0))
        .impute_categories(Impute::ConstantCategory("missing".into()))
        .standardize();
    check("penguins_constant", &frame, &pipeline)
}

#[test]
fn auto_mpg_median_dates_one_hot_standardised() -> TestResult {
    let Some(frame) = auto_mpg("auto_mpg_median_dates_one_hot_standardised")? else {
        return Ok(());
    };
    let pipeline = TablePipeline::new("Miles_per_Gallon")
        .impute(Impute::Median)
        .unknown(Unknown::Error)
        .standardize();
    check("auto_mpg_median", &frame, &pipeline)
}

#[test]
fn auto_mpg_every_feature_standardised() -> TestResult {
    let Some(frame) = auto_mpg("auto_mpg_every_feature_standardised")? else {
        return Ok(());
    };
    let pipeline = TablePipeline::new("Miles_per_Gallon")
        .impute(Impute::Median)
        .unknown(Unknown::Error)
        .scale_every_feature()
        .standardize();
    check("auto_mpg_every_feature", &frame, &pipeline)
}

#[test]
fn auto_mpg_clipped_log_and_power_transforms() -> TestResult {
    let Some(frame) = auto_mpg("auto_mpg_clipped_log_and_power_transforms")? else {
        return Ok(());
    };
    let pipeline = TablePipeline::new("Miles_per_Gallon")
        .impute(Impute::Median)
        .unknown(Unknown::Error)
        .clip_quantiles(0.05, 0.95)
        .log1p(["Displacement"])
        .power(["Horsepower"])
        .standardize();
    check("auto_mpg_outliers", &frame, &pipeline)?;
    let fitted = pipeline.fit(&training_part(&frame)?)?;
    for (key, value) in expected_fills("auto_mpg_outliers")? {
        let (column, what) = key.rsplit_once('.').ok_or("a key without a part")?;
        let Some(Role::Number(steps)) = fitted.column(column).map(|c| &c.role) else {
            return Err(format!("{column} is not a number column").into());
        };
        let want: f64 = value.parse()?;
        let got = match what {
            "lambda" => match steps.reshape {
                Some(kiln_data::clean::FittedReshape::Power(l)) => l,
                _ => f64::NAN,
            },
            "low" => steps.clip.map_or(f64::NAN, |c| c.0),
            _ => steps.clip.map_or(f64::NAN, |c| c.1),
        };
        assert!(
            (got - want).abs() < TOLERANCE,
            "{key}: {got}, scikit-learn's {want}"
        );
    }
    Ok(())
}
