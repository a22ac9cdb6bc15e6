//! Table cleaning against scikit-learn: the imputed values, the encodings, the
//! clipping bounds, the Yeo-Johnson and Box-Cox exponents and the standardised (or
//! min-max) matrix of the penguins and Auto MPG tables equal scikit-learn's within
//! 1e-6 (one case standardises the one-hot columns too, as Keras's `Normalization`;
//! one drops columns, sparse rows and duplicates as pandas does before fitting).
//!
//! The tables are the copies that ship in `examples/data`. The expected values are
//! in `tests/sklearn/`, written by `clean_tables.py` there (which says how to run
//! it); each case fits on the rows whose index is not a multiple of 5 and
//! transforms every row. `scikit_learn_recomputed_now` runs that script again into
//! a scratch folder with a Python that has scikit-learn and pandas (`KILN_PYTHON`,
//! else `python3`) and checks kiln against what it writes; it says that it skipped
//! when there is none.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_data::clean::{FittedPipeline, FittedReshape, Role};
use kiln_data::frame::{Frame, Kind, ReadOptions};
use kiln_data::{Encoding, Impute, TablePipeline, Unknown};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TOLERANCE: f64 = 1e-6;

/// The cases of `clean_tables.py`, in the order it writes them.
const CASES: [&str; 8] = [
    "penguins_mean_one_hot",
    "penguins_most_frequent_ordinal",
    "penguins_constant",
    "penguins_dropped",
    "auto_mpg_median",
    "auto_mpg_every_feature",
    "auto_mpg_outliers",
    "auto_mpg_box_cox",
];

/// The expected values kept beside this test.
fn expected_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sklearn")
}

/// The tables as shipped with the examples.
fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data")
}

/// The rows the cases fit on: those whose index is not a multiple of 5.
fn training_part(frame: &Frame) -> kiln_data::Result<Frame> {
    let rows: Vec<usize> = (0..frame.len()).filter(|i| i % 5 != 0).collect();
    frame.select(&rows)
}

/// scikit-learn's feature names and matrix (row after row) for `case`, from `dir`.
fn expected_matrix(dir: &Path, case: &str) -> kiln_data::Result<(Vec<String>, Vec<f64>)> {
    let frame = Frame::read_csv(dir.join(format!("{case}.csv.gz")), &ReadOptions::new())?;
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

/// `(column, fill)` pairs of `case` in `dir`, as text.
fn expected_fills(dir: &Path, case: &str) -> kiln_data::Result<Vec<(String, String)>> {
    let options = ReadOptions::new()
        .missing(Vec::<String>::new())
        .kind("column", Kind::Text)
        .kind("fill", Kind::Text);
    let frame = Frame::read_csv(dir.join(format!("{case}_fill.csv")), &options)?;
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

/// A fitted exponent or clipping bound: `key` is `<column>.lambda`, `.low` or `.high`.
fn fitted_extra(fitted: &FittedPipeline, key: &str) -> Result<f64, String> {
    let (column, what) = key.rsplit_once('.').ok_or("a key without a part")?;
    let Some(Role::Number(steps)) = fitted.column(column).map(|c| &c.role) else {
        return Err(format!("{column} is not a number column"));
    };
    Ok(match what {
        "lambda" => match steps.reshape {
            Some(FittedReshape::Power(l) | FittedReshape::BoxCox(l)) => l,
            _ => f64::NAN,
        },
        "low" => steps.clip.map_or(f64::NAN, |c| c.0),
        _ => steps.clip.map_or(f64::NAN, |c| c.1),
    })
}

/// The table, the rows to fit on and the pipeline of `case`.
fn case(case: &str) -> Result<(Frame, Frame, TablePipeline), Box<dyn std::error::Error>> {
    let data = data_dir();
    let penguins = || Frame::read_csv(data.join("penguins.csv"), &ReadOptions::new());
    let auto_mpg = || {
        Frame::read_json(data.join("auto_mpg.json"), &ReadOptions::new())?
            .drop_missing("Miles_per_Gallon")
    };
    let penguin_pipeline = || {
        TablePipeline::new("species")
            .drop_columns(["year"])
            .unknown(Unknown::Error)
    };
    let mpg_pipeline = || {
        TablePipeline::new("Miles_per_Gallon")
            .impute(Impute::Median)
            .unknown(Unknown::Error)
    };
    let (frame, pipeline) = match case {
        "penguins_mean_one_hot" => (
            penguins()?,
            penguin_pipeline()
                .impute(Impute::Mean)
                .missing_indicators()
                .standardize(),
        ),
        "penguins_most_frequent_ordinal" => (
            penguins()?,
            penguin_pipeline()
                .impute(Impute::MostFrequent)
                .encode(Encoding::Ordinal)
                .min_max(),
        ),
        "penguins_dropped" => {
            let frame = penguins()?;
            let train: Vec<usize> = (0..frame.len()).filter(|i| i % 5 != 0).collect();
            // The training rows, then some of them again: duplicates to drop.
            let again = train.iter().copied().filter(|i| i % 7 == 1);
            let rows: Vec<usize> = train.iter().copied().chain(again).collect();
            let pipeline = penguin_pipeline()
                .drop_columns_missing_over(0.02)
                .drop_rows_missing_over(0.5)
                .drop_duplicates()
                .standardize();
            return Ok((frame.select(&rows)?, frame, pipeline));
        }
        "penguins_constant" => (
            penguins()?,
            penguin_pipeline()
                .impute(Impute::Constant(0.0))
                .impute_categories(Impute::ConstantCategory("missing".into()))
                .standardize(),
        ),
        "auto_mpg_median" => (auto_mpg()?, mpg_pipeline().standardize()),
        "auto_mpg_every_feature" => (
            auto_mpg()?,
            mpg_pipeline().scale_every_feature().standardize(),
        ),
        "auto_mpg_outliers" => (
            auto_mpg()?,
            mpg_pipeline()
                .clip_quantiles(0.05, 0.95)
                .log1p(["Displacement"])
                .power(["Horsepower"])
                .standardize(),
        ),
        "auto_mpg_box_cox" => (
            auto_mpg()?,
            mpg_pipeline()
                .box_cox(["Weight_in_lbs", "Acceleration"])
                .standardize(),
        ),
        other => return Err(format!("no case {other}").into()),
    };
    Ok((training_part(&frame)?, frame, pipeline))
}

/// Fits the pipeline of `name` on the training part of its table and compares it
/// with scikit-learn's values in `dir`.
fn check(name: &str, dir: &Path) -> TestResult {
    let (train, frame, pipeline) = case(name)?;
    let fitted = pipeline.fit(&train)?;
    let (names, want) = expected_matrix(dir, name)?;
    assert_eq!(fitted.feature_names(), names, "{name}: the features");
    let got = fitted.values(&frame)?;
    assert_eq!(got.len(), want.len(), "{name}: the matrix's size");
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < TOLERANCE, "{name}: the matrix differs by {worst:e}");
    // What a model receives, in f32.
    let inputs = fitted.inputs(&frame)?;
    let floats = inputs.floats().unwrap_or_default();
    let worst32 = floats
        .iter()
        .zip(&want)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst32 < TOLERANCE,
        "{name}: the f32 inputs differ by {worst32:e}"
    );
    for (column, fill) in expected_fills(dir, name)? {
        if let Some(what) = column.strip_prefix("rows.") {
            let rows = fitted.training_rows();
            let got = match what {
                "read" => rows.read,
                "too_sparse" => rows.too_sparse,
                "duplicates" => rows.duplicates,
                _ => rows.kept,
            };
            assert_eq!(got.to_string(), fill, "{name}: the rows {what}");
            continue;
        }
        if column.ends_with(".lambda") || column.ends_with(".low") || column.ends_with(".high") {
            let (got, want) = (fitted_extra(&fitted, &column)?, fill.parse::<f64>()?);
            assert!(
                (got - want).abs() < TOLERANCE,
                "{name}: {column} is {got}, scikit-learn's {want}"
            );
            continue;
        }
        match fill_of(&fitted, &column).ok_or(format!("{name}: no fill for {column}"))? {
            Ok(x) => {
                let want: f64 = fill.parse()?;
                assert!(
                    (x - want).abs() < TOLERANCE,
                    "{name}: {column} is filled with {x}, scikit-learn's {want}"
                );
            }
            Err(category) => assert_eq!(category, fill, "{name}: {column}'s fill"),
        }
    }
    eprintln!(
        "{name}: {} x {} within {worst:.1e} (f64) and {worst32:.1e} (f32) of scikit-learn",
        got.len() / names.len().max(1),
        names.len()
    );
    Ok(())
}

#[test]
fn penguins_mean_indicators_one_hot_standardised() -> TestResult {
    check("penguins_mean_one_hot", &expected_dir())
}

#[test]
fn penguins_most_frequent_ordinal_min_max() -> TestResult {
    check("penguins_most_frequent_ordinal", &expected_dir())
}

#[test]
fn penguins_columns_rows_and_duplicates_dropped() -> TestResult {
    check("penguins_dropped", &expected_dir())
}

#[test]
fn penguins_constant_fills() -> TestResult {
    check("penguins_constant", &expected_dir())
}

#[test]
fn auto_mpg_median_dates_one_hot_standardised() -> TestResult {
    check("auto_mpg_median", &expected_dir())
}

#[test]
fn auto_mpg_every_feature_standardised() -> TestResult {
    check("auto_mpg_every_feature", &expected_dir())
}

#[test]
fn auto_mpg_clipped_log_and_power_transforms() -> TestResult {
    check("auto_mpg_outliers", &expected_dir())
}

#[test]
fn auto_mpg_box_cox_transforms() -> TestResult {
    check("auto_mpg_box_cox", &expected_dir())
}

/// A Python that has scikit-learn and pandas: `KILN_PYTHON`, else `python3`.
fn python_with_sklearn() -> Result<String, String> {
    let python = std::env::var("KILN_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&python)
        .args(["-c", "import sklearn, pandas, scipy"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(format!(
            "{python} lacks scikit-learn or pandas ({}); set KILN_PYTHON to a Python that has both",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => Err(format!("cannot run {python}: {e}")),
    }
}

#[test]
fn scikit_learn_recomputed_now() -> TestResult {
    let python = match python_with_sklearn() {
        Ok(p) => p,
        Err(why) => {
            // Straight to stderr: the harness captures `eprintln!`, and a skip must show.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: scikit_learn_recomputed_now: {why}"
            );
            return Ok(());
        }
    };
    let out = common::Scratch::new("sklearn-now");
    let run = Command::new(&python)
        .arg(expected_dir().join("clean_tables.py"))
        .arg(data_dir())
        .arg(out.path())
        .output()?;
    assert!(
        run.status.success(),
        "clean_tables.py failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for name in CASES {
        check(name, out.path())?;
    }
    Ok(())
}
