//! Typed tables on the real files shipped in `examples/data` (copies of
//! `../shared/data/tabular`): the penguins CSV and the Auto MPG JSON records, their
//! kinds, missing cells and categories, and a cleaning pipeline fitted on a training
//! part and applied to the rest.

use std::path::{Path, PathBuf};

use kiln_data::clean::{Role, RowCounts};
use kiln_data::frame::{Frame, Kind, ReadOptions};
use kiln_data::split::{split, split_stratified};
use kiln_data::{Impute, TablePipeline};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The tables as shipped with the examples.
fn table(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/data")
        .join(name)
}

#[test]
fn penguins_kinds_missing_cells_and_report() -> TestResult {
    let frame = Frame::read_csv(table("penguins.csv"), &ReadOptions::new())?;
    assert_eq!(frame.len(), 344);
    let kinds: Vec<(&str, Kind, usize)> = frame
        .columns()
        .iter()
        .map(|c| (c.name(), c.kind(), c.missing()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("species", Kind::Category, 0),
            ("island", Kind::Category, 0),
            ("bill_length_mm", Kind::Number, 2),
            ("bill_depth_mm", Kind::Number, 2),
            ("flipper_length_mm", Kind::Number, 2),
            ("body_mass_g", Kind::Number, 2),
            ("sex", Kind::Category, 11),
            ("year", Kind::Number, 0),
        ]
    );
    let report = frame.describe();
    println!("{report}");
    assert_eq!(
        report.columns[0].values,
        [
            ("Adelie".to_string(), 152),
            ("Chinstrap".into(), 68),
            ("Gentoo".into(), 124)
        ]
    );
    let text = report.to_string();
    assert!(
        text.contains("island: Biscoe 168, Dream 124, Torgersen 52"),
        "{text}"
    );
    Ok(())
}

#[test]
fn penguins_cleaned_on_a_stratified_training_part() -> TestResult {
    let frame = Frame::read_csv(table("penguins.csv"), &ReadOptions::new())?;
    let parts = split_stratified(&frame.labels("species")?, 0.0, 0.2, 0)?;
    let (train, test) = (frame.select(&parts.train)?, frame.select(&parts.test)?);
    let fitted = TablePipeline::new("species")
        .drop_columns(["year"])
        .drop_rows_missing_over(0.5)
        .missing_indicators()
        .standardize()
        .fit(&train)?;
    println!("{fitted}");
    let rows = fitted.training_rows();
    assert_eq!(rows.read, 275);
    assert_eq!(rows.kept + rows.too_sparse, 275);
    let data = fitted.transform(&train)?;
    assert_eq!(data.shape(), [fitted.width()]);
    assert_eq!(data.class_names(), ["Adelie", "Chinstrap", "Gentoo"]);
    let x = data.floats().ok_or("no floats")?;
    assert!(x.iter().all(|v| v.is_finite()));
    // Every input of a test row is there, and no test row taught the pipeline.
    let test_data = fitted.inputs(&test)?;
    assert_eq!(test_data.len(), test.len());
    let Some(Role::Category(sex)) = fitted.column("sex").map(|c| &c.role) else {
        return Err("sex is not a category".into());
    };
    assert_eq!(sex.categories, ["female", "male"]);
    Ok(())
}

#[test]
fn auto_mpg_records_dates_and_missing_targets() -> TestResult {
    let frame = Frame::read_json(table("auto_mpg.json"), &ReadOptions::new())?;
    assert_eq!(frame.len(), 406);
    let kind = |n: &str| frame.column(n).map(|c| (c.kind(), c.missing()));
    assert_eq!(kind("Name"), Some((Kind::Text, 0)));
    assert_eq!(kind("Miles_per_Gallon"), Some((Kind::Number, 8)));
    assert_eq!(kind("Horsepower"), Some((Kind::Number, 6)));
    assert_eq!(kind("Year"), Some((Kind::Date, 0)));
    assert_eq!(kind("Origin"), Some((Kind::Category, 0)));
    println!("{}", frame.describe());

    let labelled = frame.drop_missing("Miles_per_Gallon")?;
    let parts = split(labelled.len(), 0.0, 0.2, 0)?;
    let train = labelled.select(&parts.train)?;
    let fitted = TablePipeline::new("Miles_per_Gallon")
        .impute(Impute::Median)
        .standardize()
        .fit(&train)?;
    println!("{fitted}");
    assert_eq!(
        fitted.training_rows(),
        RowCounts {
            read: 318,
            kept: 318,
            ..RowCounts::default()
        }
    );
    assert_eq!(
        fitted.feature_names(),
        [
            "Cylinders",
            "Displacement",
            "Horsepower",
            "Weight_in_lbs",
            "Acceleration",
            "Year.year",
            "Year.day_of_year",
            "Origin=Europe",
            "Origin=Japan",
            "Origin=USA",
            "Origin.unknown"
        ]
    );
    // The rows without a target are dropped from labelled data, kept for predicting.
    assert_eq!(fitted.transform(&frame)?.len(), 398);
    assert_eq!(fitted.inputs(&frame)?.len(), 406);
    Ok(())
}
