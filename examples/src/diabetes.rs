//! The diabetes recipe: 442 patients, 10 measurements each (age, sex, body mass
//! index, blood pressure, six blood serum values), and a real-valued target, disease
//! progression one year later (25 to 346 points). Split 60 / 20 / 20 at random,
//! features and target standardised with the training split's statistics, a small
//! regression network trained with mean squared error.
//!
//! The `regression` example and the `tables` test use it.

use std::path::Path;

use kiln::data::csv::{self, CsvOptions, Delimiter, LabelKind};
use kiln::data::split::split;
use kiln::data::{Error as DataError, InMemory, Stats, Targets};
use kiln::prelude::*;
use kiln::train::Result;

/// The features' file name in the data folder (space-separated, gzipped).
pub const FEATURES: &str = "diabetes_data_raw.csv.gz";
/// The targets' file name in the data folder.
pub const TARGETS: &str = "diabetes_target.csv.gz";

/// The fractions of the samples held out for validation and for testing.
pub const VALIDATION: f64 = 0.2;
/// See [`VALIDATION`].
pub const TEST: f64 = 0.2;

/// The seed of the split. It is fixed, so that runs with different `--seed`s (other
/// initial weights and shuffling) are measured on the same test samples.
pub const SPLIT_SEED: u64 = 0;

kiln::model! {
    /// 10 standardised measurements, one hidden layer of 64, and the standardised
    /// disease progression (a linear output). With 266 training patients, heavy
    /// dropout holds back over-fitting better than a deeper network does.
    pub struct DiabetesNet {
        input: [10],
        fc1: Dense(64, relu),
        drop: Dropout(0.5),
        out: Dense(1),
    }
}

/// The three parts of the table with standardised targets, the features'
/// standardisation, and the target's training statistics to undo its own.
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
    /// The training targets' mean, in points.
    pub target_mean: f64,
    /// The training targets' (population) standard deviation, in points.
    pub target_std: f64,
}

impl Tables {
    /// A mean absolute error of standardised targets, in points of disease progression.
    pub fn points(&self, standardised_mae: f64) -> f64 {
        standardised_mae * self.target_std
    }

    /// The test MAE, in points, of always predicting the training targets' mean: the
    /// figure a model must beat to have learnt anything.
    pub fn mean_baseline_mae(&self) -> Result<f64> {
        let z = real_targets(&self.test)?;
        let mae = z.iter().map(|v| f64::from(v.abs())).sum::<f64>() / z.len().max(1) as f64;
        Ok(self.points(mae))
    }
}

/// Reads the two files of `dir` and splits them.
pub fn load(dir: &Path) -> Result<Tables> {
    let options = CsvOptions::default().delimiter(Delimiter::Whitespace);
    let data = csv::load_pair(
        &dir.join(FEATURES),
        &dir.join(TARGETS),
        &options,
        LabelKind::Real,
    )?;
    let split = split(data.len(), VALIDATION, TEST, SPLIT_SEED)?;
    let (train, validation, test) = split.apply(&data)?;
    // Everything fitted on the training part only: validation and test stay unseen.
    let pipeline = Pipeline::new().standardize(&Stats::per_feature(&train)?);
    let y = real_targets(&train)?;
    let n = y.len().max(1) as f64;
    let mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = y
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = if var > 0.0 { var.sqrt() } else { 1.0 };
    // MSE on targets of unit scale: the default learning rate suits it, and the
    // output layer need not grow to ~150 before the loss starts to mean anything.
    let standardise = |d: InMemory| standardise_targets(d, mean, std);
    Ok(Tables {
        train: standardise(train)?,
        validation: standardise(validation)?,
        test: standardise(test)?,
        pipeline,
        target_mean: mean,
        target_std: std,
    })
}

/// A fresh [`DiabetesNet`] (built for batches of up to `batch_size`) with mean
/// squared error, Adam (Keras's defaults) and the mean absolute error as metric.
pub fn trainer(cpu: &Cpu, batch_size: usize, seed: u64) -> Result<Trainer<Cpu, DiabetesNet>> {
    let model = DiabetesNet::new(cpu, batch_size, seed)?;
    Ok(Trainer::new(
        model,
        Loss::mean_squared_error(),
        Optimizer::new(Adam::default()),
    )?
    .metrics([Metric::MeanAbsoluteError]))
}

/// Training options: the standardisation, validation after every epoch, and early
/// stopping on the validation loss that puts back the best epoch's weights.
pub fn fit_options(
    tables: &Tables,
    epochs: usize,
    batch_size: usize,
    seed: u64,
) -> FitOptions<Cpu, DiabetesNet> {
    FitOptions::new(epochs, batch_size)
        .seed(seed)
        .pipeline(tables.pipeline.clone())
        .validation_data(tables.validation.clone())
        .callback(
            EarlyStopping::new("val_loss")
                .patience(20)
                .restore_best_weights(true),
        )
}

/// The real-valued targets of `data`.
fn real_targets(data: &InMemory) -> Result<&[f32]> {
    match data.targets() {
        Targets::Real { values, .. } => Ok(values),
        Targets::Classes { .. } => {
            Err(DataError::Config("the diabetes targets should be real values".into()).into())
        }
    }
}

/// `data` with its targets `(y - mean) / std`.
fn standardise_targets(data: InMemory, mean: f64, std: f64) -> Result<InMemory> {
    let z = real_targets(&data)?
        .iter()
        .map(|&v| ((f64::from(v) - mean) / std) as f32)
        .collect();
    let (shape, inputs, _) = data.into_parts();
    Ok(InMemory::new(
        shape,
        inputs,
        Targets::Real {
            values: z,
            width: 1,
        },
    )?)
}
