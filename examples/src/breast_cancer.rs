//! The breast-cancer recipe: the Wisconsin diagnostic table (569 tumours, 30
//! measurements each, malignant or benign), split 60 / 20 / 20 with the class
//! proportions kept, standardised with the training split's statistics, and a small
//! network with one sigmoid output trained with binary cross-entropy.
//!
//! The `binary_classification` and `schedules` examples and the `tables` test use it.

use std::path::Path;

use kiln::data::csv::{self, CsvOptions, Header, LabelColumn, LabelKind};
use kiln::data::split::split_dataset;
use kiln::data::{InMemory, Stats};
use kiln::prelude::*;
use kiln::train::Result;

/// The table's file name in the data folder.
pub const FILE: &str = "breast_cancer.csv";

/// The fractions of the samples held out for validation and for testing.
pub const VALIDATION: f64 = 0.2;
/// See [`VALIDATION`].
pub const TEST: f64 = 0.2;

/// The seed of the split. It is fixed, so that runs with different `--seed`s (other
/// initial weights and shuffling) are measured on the same test samples.
pub const SPLIT_SEED: u64 = 0;

kiln::model! {
    /// 30 standardised measurements, one hidden layer of 16, and the probability
    /// that the tumour is benign (label 1).
    pub struct CancerNet {
        input: [30],
        fc1: Dense(16, relu),
        drop: Dropout(0.2),
        out: Dense(1, sigmoid),
    }
}

/// The three parts of the table, and the standardisation fitted on the training part.
#[derive(Clone, Debug)]
pub struct Tables {
    /// The samples to train on.
    pub train: InMemory,
    /// The samples validated on after every epoch.
    pub validation: InMemory,
    /// The held-out samples of the final figures.
    pub test: InMemory,
    /// `(x - mean) / std` with the training part's mean and std, for every part.
    pub pipeline: Pipeline,
}

/// Reads `dir/breast_cancer.csv` and splits it (stratified).
pub fn load(dir: &Path) -> Result<Tables> {
    let options = CsvOptions::default()
        .header(Header::Sklearn)
        .label(LabelColumn::Last)
        .kind(LabelKind::Class { classes: Some(2) });
    let data = csv::load(&dir.join(FILE), &options)?;
    let split = split_dataset(&data, VALIDATION, TEST, SPLIT_SEED, true)?;
    let (train, validation, test) = split.apply(&data)?;
    // Fitted on the training part only: validation and test stay unseen.
    let pipeline = Pipeline::new().standardize(&Stats::per_feature(&train)?);
    Ok(Tables {
        train,
        validation,
        test,
        pipeline,
    })
}

/// A fresh [`CancerNet`] (built for batches of up to `batch_size`) with binary
/// cross-entropy, `optimizer`, and accuracy, precision and recall as metrics.
pub fn trainer(
    cpu: &Cpu,
    batch_size: usize,
    seed: u64,
    optimizer: Optimizer<Cpu>,
) -> Result<Trainer<Cpu, CancerNet>> {
    let model = CancerNet::new(cpu, batch_size, seed)?;
    Ok(
        Trainer::new(model, Loss::binary_crossentropy(), optimizer)?.metrics([
            Metric::Accuracy,
            Metric::Precision,
            Metric::Recall,
        ]),
    )
}

/// Training options: the standardisation, validation after every epoch, and early
/// stopping on the validation loss that puts back the best epoch's weights.
pub fn fit_options(
    tables: &Tables,
    epochs: usize,
    batch_size: usize,
    seed: u64,
) -> FitOptions<Cpu, CancerNet> {
    FitOptions::new(epochs, batch_size)
        .seed(seed)
        .pipeline(tables.pipeline.clone())
        .validation_data(tables.validation.clone())
        .callback(
            EarlyStopping::new("val_loss")
                .patience(10)
                .restore_best_weights(true),
        )
}
