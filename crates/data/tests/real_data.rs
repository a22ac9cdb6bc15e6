//! The loaders on the real files of `../shared/data`: counts, label histograms,
//! first records and per-channel means match the figures of its README (the first
//! records were read independently with Python's gzip module). Each test says on
//! stderr that it skipped when that folder is absent.

// The helpers below are shared by the tests; a failing call fails the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Instant;

use common::shared_data;
use kiln_data::csv::{CsvOptions, Delimiter, Header, LabelKind};
use kiln_data::{Pipeline, Stats, Targets, cifar, csv, mnist, split};

#[test]
fn cifar_first_records_and_test_set() {
    let Some(data) = shared_data("cifar_first_records_and_test_set") else {
        return;
    };
    let dir = data.join("cifar10");
    let test = cifar::load_file(&dir.join("test_batch.bin.gz")).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.shape(), &[32, 32, 3]);
    assert_eq!(test.class_counts(), vec![1_000; 10]);
    assert_eq!(test.labels().unwrap()[..10], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
    let px = test.bytes().unwrap();
    // HWC: pixel (0, 0) then pixel (1, 2) = index 34 of image 0.
    assert_eq!(&px[..3], &[158, 112, 49]);
    assert_eq!(&px[34 * 3..34 * 3 + 3], &[159, 114, 45]);
    assert_eq!(test.class_names()[3], "cat");

    let names = std::fs::read_to_string(dir.join("batches.meta.txt")).unwrap();
    let names: Vec<&str> = names.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(names, cifar::CLASS_NAMES);
}

#[test]
fn cifar_training_set_matches_the_readme() {
    let Some(data) = shared_data("cifar_training_set_matches_the_readme") else {
        return;
    };
    let start = Instant::now();
    let (train, test) = cifar::load_dir(&data.join("cifar10")).unwrap();
    eprintln!(
        "CIFAR-10 (train + test, gzipped, MD5-verified) loaded in {:.2?}",
        start.elapsed()
    );
    assert_eq!((train.len(), test.len()), (50_000, 10_000));
    assert_eq!(train.class_counts(), vec![5_000; 10]);
    assert_eq!(
        train.labels().unwrap()[..10],
        [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    );
    assert_eq!(&train.bytes().unwrap()[..3], &[59, 62, 63]);
    let stats = Stats::per_channel(&train).unwrap();
    for (m, want) in stats.mean.iter().zip([125.307, 122.950, 113.865]) {
        assert!((m - want).abs() < 1e-3, "{:?}", stats.mean);
    }
    let std01 = stats.scaled(1.0 / 255.0).std;
    for (s, want) in std01.iter().zip([0.2470, 0.2435, 0.2616]) {
        assert!((s - want).abs() < 1e-4, "{std01:?}");
    }
}

#[test]
fn mnist_digits_from_files_equal_the_embedded_ones() {
    let Some(data) = shared_data("mnist_digits_from_files_equal_the_embedded_ones") else {
        return;
    };
    let dir = data.join("mnist10k");
    let d = mnist::load_files(
        &dir.join("images-idx3-ubyte.gz"),
        &dir.join("labels-idx1-ubyte.gz"),
    )
    .unwrap();
    assert_eq!(d.shape(), &[28, 28, 1]);
    assert_eq!(
        d.class_counts(),
        vec![1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    );
    assert_eq!(d, mnist::embedded_all().unwrap());
}

fn sklearn(path: &Path) -> kiln_data::InMemory {
    csv::load(path, &CsvOptions::default().header(Header::Sklearn)).unwrap()
}

#[test]
fn uci_tables() {
    let Some(data) = shared_data("uci_tables") else {
        return;
    };
    let small = data.join("small");

    let iris = sklearn(&small.join("iris.csv"));
    assert_eq!((iris.len(), iris.shape()), (150, &[4][..]));
    assert_eq!(iris.class_counts(), vec![50, 50, 50]);
    assert_eq!(&iris.floats().unwrap()[..4], &[5.1, 3.5, 1.4, 0.2]);
    assert_eq!(iris.class_names(), &["setosa", "versicolor", "virginica"]);

    let cancer = sklearn(&small.join("breast_cancer.csv"));
    assert_eq!((cancer.len(), cancer.shape()), (569, &[30][..]));
    assert_eq!(cancer.class_counts(), vec![212, 357]);
    assert_eq!(&cancer.floats().unwrap()[..3], &[17.99, 10.38, 122.8]);
    assert_eq!(cancer.class_names(), &["malignant", "benign"]);

    let wine = sklearn(&small.join("wine_data.csv"));
    assert_eq!((wine.len(), wine.shape()), (178, &[13][..]));
    assert_eq!(wine.class_counts(), vec![59, 71, 48]);
    assert_eq!(&wine.floats().unwrap()[..3], &[14.23, 1.71, 2.43]);

    let digits = csv::load(&small.join("digits.csv.gz"), &CsvOptions::default()).unwrap();
    assert_eq!((digits.len(), digits.shape()), (1797, &[64][..]));
    assert_eq!(
        digits.class_counts(),
        vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    assert!(
        digits
            .floats()
            .unwrap()
            .iter()
            .all(|&v| (0.0..=16.0).contains(&v))
    );

    let ws = CsvOptions::default().delimiter(Delimiter::Whitespace);
    let diabetes = csv::load_pair(
        &small.join("diabetes_data_raw.csv.gz"),
        &small.join("diabetes_target.csv.gz"),
        &ws,
        LabelKind::Real,
    )
    .unwrap();
    assert_eq!((diabetes.len(), diabetes.shape()), (442, &[10][..]));
    assert_eq!(&diabetes.floats().unwrap()[..3], &[59.0, 2.0, 32.1]);
    let Targets::Real { values, width: 1 } = diabetes.targets() else {
        panic!("real targets")
    };
    assert_eq!(values[0], 151.0);
    let (lo, hi) = values
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert_eq!((lo, hi), (25.0, 346.0));
}

#[test]
fn uci_stratified_split_standardized_on_the_training_part() {
    let Some(data) = shared_data("uci_stratified_split_standardized_on_the_training_part") else {
        return;
    };
    let cancer = sklearn(&data.join("small/breast_cancer.csv"));
    let parts = split::split_dataset(&cancer, 0.2, 0.2, 7, true).unwrap();
    let (train, val, test) = parts.apply(&cancer).unwrap();
    assert_eq!((train.len(), val.len(), test.len()), (341, 114, 114));
    // 212 malignant of 569: each part within one sample of that proportion.
    for part in [&train, &val, &test] {
        let want = part.len() as f64 * 212.0 / 569.0;
        assert!(
            (part.class_counts()[0] as f64 - want).abs() <= 1.0,
            "{:?}",
            part.class_counts()
        );
    }
    let stats = Stats::per_feature(&train).unwrap();
    let prep = Pipeline::new().standardize(&stats);
    let train_z = Stats::per_feature(&train.to_f32(&prep).unwrap()).unwrap();
    assert!(
        train_z.mean.iter().all(|m| m.abs() < 1e-4),
        "{:?}",
        train_z.mean
    );
    assert!(
        train_z.std.iter().all(|s| (s - 1.0).abs() < 1e-3),
        "{:?}",
        train_z.std
    );
    // The validation part gets the training statistics: close to, not exactly, 0 and 1.
    let val_z = Stats::per_feature(&val.to_f32(&prep).unwrap()).unwrap();
    assert!(val_z.mean.iter().all(|m| m.abs() < 0.5) && val_z.mean.iter().any(|m| m.abs() > 1e-3));
}
