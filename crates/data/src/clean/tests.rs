//! Tests of fitting and applying table pipelines: statistics from the training rows
//! only, each step's values, unseen categories, dropped rows and columns, saving,
//! and the errors that leave nothing half-fitted.

use super::*;
use crate::dataset::Targets;
use crate::error::Error;
use crate::frame::{Frame, ReadOptions};

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Six training rows: a class, a number with a gap, a category with a gap, a date.
const TRAIN: &[u8] = b"y,x,c,d\n\
a,1,red,2020-01-01\n\
a,2,blue,2020-02-01\n\
b,NA,red,NA\n\
b,4,NA,2021-01-01\n\
a,10,red,2022-12-31\n\
b,7,blue,2021-07-01\n";

fn frame(bytes: &[u8]) -> crate::Result<Frame> {
    Frame::parse_csv(bytes, "t.csv", &ReadOptions::new())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn imputes_encodes_and_standardises_from_the_training_rows() -> TestResult {
    let train = frame(TRAIN)?;
    let fitted = TablePipeline::new("y")
        .impute(Impute::Median)
        .missing_indicators()
        .standardize()
        .fit(&train)?;
    assert_eq!(
        fitted.feature_names(),
        [
            "x",
            "x.missing",
            "c=blue",
            "c=red",
            "c.unknown",
            "c.missing",
            "d.year",
            "d.day_of_year",
            "d.missing"
        ]
    );
    let Some(FittedColumn {
        role: Role::Number(x),
        missing: 1,
        indicator: true,
        ..
    }) = fitted.column("x")
    else {
        return Err(format!("{:?}", fitted.column("x")).into());
    };
    assert_eq!(x.fill, 4.0, "the median of 1, 2, 4, 10, 7");
    // After filling: 1, 2, 4, 4, 10, 7: mean 4.666..., population std 3.0912...
    let (center, scale) = fitted.scales()[0].ok_or("no scale")?;
    assert_eq!(fitted.scales()[1], None, "indicators stay 0 and 1");
    assert!(close(center, 28.0 / 6.0));
    let var = [1.0f64, 2.0, 4.0, 4.0, 10.0, 7.0]
        .iter()
        .map(|v| (v - 28.0 / 6.0).powi(2))
        .sum::<f64>()
        / 6.0;
    assert!(close(scale, var.sqrt()));
    let Some(Role::Category(c)) = fitted.column("c").map(|c| &c.role) else {
        return Err("c is not a category".into());
    };
    assert_eq!(
        (c.categories.clone(), c.fill.as_str()),
        (vec!["blue".to_string(), "red".into()], "red")
    );

    let data = fitted.transform(&train)?;
    assert_eq!(data.shape(), [9]);
    assert_eq!(data.labels(), Some(&[0, 0, 1, 1, 0, 1][..]));
    assert_eq!(data.class_names(), ["a", "b"]);
    let row = |i: usize| {
        data.floats()
            .map(|v| v[i * 9..(i + 1) * 9].to_vec())
            .unwrap_or_default()
    };
    let r2 = row(2); // b, NA, red, NA
    assert!(((f64::from(r2[0])) - (4.0 - center) / scale).abs() < 1e-6);
    assert_eq!(&r2[1..6], &[1.0, 0.0, 1.0, 0.0, 0.0]);
    assert_eq!(r2[8], 1.0, "the date was missing");
    let r3 = row(3); // b, 4, NA -> red
    assert_eq!(&r3[1..6], &[0.0, 0.0, 1.0, 0.0, 1.0]);
    let years: Vec<f32> = (0..6).map(|i| row(i)[6]).collect();
    let mean: f32 = years.iter().sum::<f32>() / 6.0;
    assert!(
        mean.abs() < 1e-6,
        "standardised years have mean 0: {years:?}"
    );
    Ok(())
}

#[test]
fn every_feature_scaled_as_keras_normalization() -> TestResult {
    let train = frame(TRAIN)?;
    let fitted = TablePipeline::new("y")
        .missing_indicators()
        .scale_every_feature()
        .standardize()
        .fit(&train)?;
    assert!(fitted.scales().iter().all(Option::is_some));
    let v = fitted.values(&train)?;
    let width = fitted.width();
    for j in 0..width {
        let column: Vec<f64> = v.iter().skip(j).step_by(width).copied().collect();
        let mean = column.iter().sum::<f64>() / 6.0;
        assert!(
            mean.abs() < 1e-12,
            "{}: mean {mean}",
            fitted.feature_names()[j]
        );
    }
    let c_blue = fitted.feature_names().iter().position(|n| n == "c=blue");
    let (center, _) = c_blue
        .and_then(|j| fitted.scales()[j])
        .ok_or("c=blue unscaled")?;
    assert!(close(center, 2.0 / 6.0), "two blue of six");
    Ok(())
}

#[test]
fn later_rows_use_the_training_statistics() -> TestResult {
    let train = frame(TRAIN)?;
    let fitted = TablePipeline::new("y")
        .impute(Impute::Mean)
        .standardize()
        .fit(&train)?;
    let test = frame(b"y,x,c,d\na,100,red,2020-01-01\nb,NA,blue,2020-01-02\n")?;
    let values = fitted.values(&test)?;
    let Some(Role::Number(x)) = fitted.column("x").map(|c| &c.role) else {
        return Err("x is not a number".into());
    };
    assert!(
        close(x.fill, 4.8),
        "the mean of the training values 1, 2, 4, 10, 7"
    );
    let (center, scale) = fitted.scales()[0].ok_or("no scale")?;
    assert!(
        close(values[0], (100.0 - center) / scale),
        "not refitted on the test rows"
    );
    assert!(close(values[fitted.width()], (4.8 - center) / scale));
    Ok(())
}

#[test]
fn unseen_categories_take_the_reserved_slot_or_fail() -> TestResult {
    let train = frame(TRAIN)?;
    let new = b"x,c,d\n3,green,2020-05-05\n";
    let reserved = TablePipeline::new("y").fit(&train)?;
    let rows = Frame::parse_csv(new, "new.csv", &reserved.read_options())?;
    let x = reserved.inputs(&rows)?;
    let names = reserved.feature_names();
    let at = |n: &str| names.iter().position(|f| f == n).unwrap_or(usize::MAX);
    let v = x.floats().unwrap_or_default();
    assert_eq!(
        (v[at("c=blue")], v[at("c=red")], v[at("c.unknown")]),
        (0.0, 0.0, 1.0)
    );

    let ordinal = TablePipeline::new("y")
        .encode(Encoding::Ordinal)
        .fit(&train)?;
    assert_eq!(
        ordinal.values(&rows)?[1],
        2.0,
        "the rank after blue (0) and red (1)"
    );

    let strict = TablePipeline::new("y")
        .unknown(Unknown::Error)
        .fit(&train)?;
    assert!(!strict.feature_names().iter().any(|n| n == "c.unknown"));
    let err = strict
        .inputs(&rows)
        .err()
        .ok_or("an unseen category passed")?;
    assert_eq!(
        err.to_string(),
        "new.csv:2: column `c`, row 1: `green` is a category unseen in training (seen: blue, red); \
         to map unseen categories to a reserved slot, fit with TablePipeline::unknown(Unknown::Reserved)"
    );
    let unseen_class = frame(b"y,x,c,d\nz,1,red,2020-01-01\n")?;
    let err = strict
        .transform(&unseen_class)
        .err()
        .ok_or("an unseen class passed")?;
    assert!(
        err.to_string()
            .contains("column `y`, row 1: the class `z` was not among the training classes (a, b)"),
        "{err}"
    );
    Ok(())
}

#[test]
fn drops_rows_and_columns() -> TestResult {
    let text = b"y,x,sparse,c\n\
a,1,NA,red\n\
NA,2,NA,red\n\
b,NA,NA,NA\n\
a,1,NA,red\n\
b,5,9,blue\n";
    let f = frame(text)?;
    let fitted = TablePipeline::new("y")
        .drop_columns_missing_over(0.5)
        .drop_rows_missing_over(0.5)
        .drop_duplicates()
        .fit(&f)?;
    assert_eq!(
        fitted.column("sparse").map(|c| &c.role),
        Some(&Role::Dropped(Dropped::Missing(0.75)))
    );
    assert_eq!(
        fitted.training_rows(),
        RowCounts {
            read: 5,
            without_target: 1,
            too_sparse: 1,
            duplicates: 1,
            kept: 2
        }
    );
    assert_eq!(fitted.transform(&f)?.len(), 2);
    // Rows to predict on are never dropped.
    assert_eq!(fitted.inputs(&f)?.len(), 5);
    let report = fitted.to_string();
    assert!(
        report.contains("sparse  number    left out: 75.0 % missing"),
        "{report}"
    );

    let asked = TablePipeline::new("y").drop_columns(["x", "sparse", "c"]);
    let err = asked.fit(&f).err().ok_or("fitted with no input")?;
    assert!(
        err.to_string()
            .contains("no input column is left to predict `y` from"),
        "{err}"
    );
    let all_gone = frame(b"y,x\nNA,1\nNA,2\n")?;
    let err = TablePipeline::new("y")
        .fit(&all_gone)
        .err()
        .ok_or("fitted on no rows")?;
    assert_eq!(
        err.to_string(),
        "t.csv: no rows left after cleaning: of 2 rows, 2 without the target `y` (rows 1, 2)"
    );
    let none = all_gone.select(&[])?;
    let err = TablePipeline::new("y")
        .fit(&none)
        .err()
        .ok_or("fitted on no rows")?;
    assert_eq!(
        err.to_string(),
        "t.csv: no rows to fit the cleaning on: the training rows are none"
    );
    let sparse_or_repeated =
        frame(b"y,x,z\nNA,1,2\na,NA,NA\nb,NA,NA\nb,NA,NA\nc,NA,NA\nc,NA,NA\n")?;
    let err = TablePipeline::new("y")
        .impute(Impute::Constant(0.0))
        .drop_rows_missing_over(0.5)
        .fit(&sparse_or_repeated)
        .err()
        .ok_or("fitted on no rows")?;
    assert_eq!(
        err.to_string(),
        "t.csv: no rows left after cleaning: of 6 rows, 1 without the target `y` (row 1), \
         5 missing more than 50 % of their input cells (rows 2, 3, 4 and 2 more)"
    );
    Ok(())
}

#[test]
fn clips_and_reshapes_skewed_columns() -> TestResult {
    let text = b"y,x,z\n1,0,1\n2,1,2\n3,2,4\n4,3,8\n5,100,1000\n";
    let f = frame(text)?;
    assert_eq!(f.column("y").map(|c| c.kind()), Some(Kind::Number));
    let fitted = TablePipeline::new("y")
        .clip_column("x", 0.0, 0.75)
        .log1p(["x"])
        .power(["z"])
        .fit(&f)?;
    let Some(Role::Number(x)) = fitted.column("x").map(|c| &c.role) else {
        return Err("x is not a number".into());
    };
    assert_eq!(
        x.clip,
        Some((0.0, 3.0)),
        "np.quantile([0, 1, 2, 3, 100], 0.75) = 3"
    );
    let v = fitted.values(&f)?;
    assert!(close(v[8], 4f64.ln()), "100 clipped to 3, then ln(1 + 3)");
    let Some(Role::Number(z)) = fitted.column("z").map(|c| &c.role) else {
        return Err("z is not a number".into());
    };
    let Some(FittedReshape::Power(lambda)) = z.reshape else {
        return Err("z has no power transform".into());
    };
    assert!(
        lambda < 0.5,
        "a right-skewed column gets an exponent below 1: {lambda}"
    );
    let data = fitted.transform(&f)?;
    assert_eq!(
        data.targets(),
        &Targets::Real {
            values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            width: 1
        }
    );
    let negative = frame(b"y,x,z\n1,-2,1\n")?;
    assert!(fitted.values(&negative).is_ok(), "clipped to 0 first");
    let unclipped = TablePipeline::new("y").log1p(["x"]).fit(&f)?;
    let err = unclipped.values(&negative).err().ok_or("log1p of -2")?;
    assert!(
        err.to_string()
            .contains("log1p needs values above -1, not -2"),
        "{err}"
    );
    let err = TablePipeline::new("y")
        .log1p(["x"])
        .fit(&negative)
        .err()
        .ok_or("log1p of -2 fitted")?;
    assert_eq!(
        err.to_string(),
        "t.csv:2: column `x`, row 1: log1p needs values above -1, not -2"
    );
    Ok(())
}

#[test]
fn choices_are_checked_before_anything_is_fitted() -> TestResult {
    let f = frame(TRAIN)?;
    let err = |p: TablePipeline| p.fit(&f).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err(TablePipeline::new("z")).contains("column `z`: no such column"));
    assert!(err(TablePipeline::new("d")).contains("is the target but a date column"));
    assert!(err(TablePipeline::new("y").drop_columns(["y"])).contains("is the target"));
    assert!(
        err(TablePipeline::new("y").encode_column("x", Encoding::Ordinal)).contains(
            "column `x`: is a number column; TablePipeline::encode_column encodes categories"
        )
    );
    assert!(err(TablePipeline::new("y").log1p(["c"])).contains("takes number columns"));
    assert!(
        err(TablePipeline::new("y").impute_column("c", Impute::Mean))
            .contains("column `c`: is a category column, which Mean cannot fill")
    );
    assert!(
        err(TablePipeline::new("y").impute(Impute::ConstantCategory("?".into())))
            .contains("column `x`: is a number column")
    );
    assert!(err(TablePipeline::new("y").drop_rows_missing_over(1.5)).contains("not in [0, 1]"));
    assert!(
        err(TablePipeline::new("y").clip_quantiles(0.9, 0.1)).contains("0 <= low <= high <= 1")
    );
    let empty = frame(b"y,x\na,NA\na,NA\nb,NA\n")?;
    let err = TablePipeline::new("y")
        .fit(&empty)
        .err()
        .ok_or("imputed from nothing")?;
    assert!(
        matches!(&err, Error::Column { column, .. } if column == "x"),
        "{err}"
    );
    // A constant needs no value to be fitted on.
    let fitted = TablePipeline::new("y")
        .impute(Impute::Constant(-1.0))
        .fit(&empty)?;
    assert_eq!(fitted.values(&empty)?, [-1.0, -1.0, -1.0]);
    Ok(())
}

#[test]
fn new_rows_are_read_as_in_training() -> TestResult {
    // `c` holds numbers that mean categories.
    let train = Frame::parse_csv(
        b"y,c\n1,10\n2,20\n3,10\n",
        "t.csv",
        &ReadOptions::new().kind("c", Kind::Category),
    )?;
    let fitted = TablePipeline::new("y").fit(&train)?;
    assert_eq!(fitted.feature_names(), ["c=10", "c=20", "c.unknown"]);
    let inferred = frame(b"c\n20\n")?;
    assert_eq!(inferred.column("c").map(|c| c.kind()), Some(Kind::Number));
    assert_eq!(
        fitted.values(&inferred)?,
        [0.0, 1.0, 0.0],
        "numbers read back as categories"
    );
    let read_as_fitted = Frame::parse_csv(b"c\n20\n", "new.csv", &fitted.read_options())?;
    assert_eq!(
        read_as_fitted.column("c").map(|c| c.kind()),
        Some(Kind::Category)
    );
    let lacking = frame(b"other\n1\n")?;
    let err = fitted
        .inputs(&lacking)
        .err()
        .ok_or("predicted without a column")?;
    assert!(
        err.to_string()
            .contains("column `c`: is missing from these rows"),
        "{err}"
    );
    Ok(())
}

#[test]
fn box_cox_of_positive_columns_saved_and_refused_below_zero() -> TestResult {
    let f = frame(b"y,z\n1,1\n2,2\n3,4\n4,8\n5,1000\n")?;
    let fitted = TablePipeline::new("y").box_cox(["z"]).fit(&f)?;
    let Some(Role::Number(z)) = fitted.column("z").map(|c| &c.role) else {
        return Err("z is not a number".into());
    };
    let Some(FittedReshape::BoxCox(lambda)) = z.reshape else {
        return Err("z has no Box-Cox transform".into());
    };
    // PowerTransformer(method="box-cox", standardize=False)
    //     .fit([[1], [2], [4], [8], [1000]]).lambdas_[0]
    // -> -0.35012120655660317 (scikit-learn 1.9.1, SciPy 1.17.1)
    assert!(
        (lambda - -0.350_121_206_556_603_17).abs() < 1e-7,
        "{lambda}"
    );
    let v = fitted.values(&f)?;
    assert!(close(v[2], (4f64.powf(lambda) - 1.0) / lambda));
    let back = FittedPipeline::from_json(&fitted.to_json())?;
    assert_eq!(back, fitted);
    assert!(
        fitted.to_json().contains("{\"box_cox\":"),
        "{}",
        fitted.to_json()
    );
    assert!(fitted.to_string().contains("Box-Cox (lambda"), "{fitted}");

    let zero = frame(b"y,z\n1,3\n2,0\n")?;
    let err = fitted.values(&zero).err().ok_or("Box-Cox of 0")?;
    assert_eq!(
        err.to_string(),
        "t.csv:3: column `z`, row 2: Box-Cox needs positive values, not 0"
    );
    let err = TablePipeline::new("y")
        .box_cox(["z"])
        .fit(&zero)
        .err()
        .ok_or("Box-Cox of 0 fitted")?;
    assert!(
        err.to_string()
            .starts_with("t.csv:3: column `z`, row 2: Box-Cox needs positive values, not 0"),
        "{err}"
    );
    let err = TablePipeline::new("y")
        .box_cox(["y2"])
        .fit(&f)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("column `y2`: no such column"), "{err}");
    Ok(())
}

#[test]
fn saves_and_reads_back_exactly() -> TestResult {
    let train = frame(TRAIN)?;
    let fitted = TablePipeline::new("y")
        .impute(Impute::Median)
        .impute_column("c", Impute::ConstantCategory("none".into()))
        .missing_indicators()
        .encode_column("c", Encoding::Ordinal)
        .unknown(Unknown::Error)
        .clip_quantiles(0.1, 0.9)
        .power(["x"])
        .drop_rows_missing_over(0.9)
        .drop_duplicates()
        .min_max()
        .fit(&train)?;
    let text = fitted.to_json();
    let back = FittedPipeline::from_json(&text)?;
    assert_eq!(back, fitted);
    assert_eq!(back.values(&train)?, fitted.values(&train)?);
    assert!(
        text.starts_with("{\"format\":\"kiln-table-pipeline\",\"version\":1,"),
        "{text}"
    );

    let broken = |from: &str, to: &str| {
        FittedPipeline::from_json(&text.replacen(from, to, 1))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(broken("\"version\":1", "\"version\":2").contains("it is version 2"));
    assert!(
        broken("\"encoding\":\"ordinal\"", "\"encoding\":\"hash\"")
            .contains("`hash` is not an encoding (column `c`)")
    );
    assert!(
        broken("\"features\":[\"x\"", "\"features\":[\"w\"")
            .contains("its columns give the features")
    );
    assert!(broken("{", "[").contains("it is not JSON"));
    Ok(())
}
