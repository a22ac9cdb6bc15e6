//! The Auto MPG recipe, TensorFlow's "basic regression" tutorial on the raw JSON
//! records: fuel consumption in miles per gallon of 406 cars of 1970 to 1982 from
//! their cylinders, displacement, horsepower, weight, acceleration, model year (a
//! date) and origin (USA, Europe, Japan). Eight cars have no MPG and six no
//! horsepower. Rows without a target are dropped, the rest split 64 / 16 / 20 at
//! random (the tutorial's 80 / 20, then 20 % of training held out for validation);
//! the cleaning is fitted on the training part (horsepower imputed with the
//! median, the date expanded to its year and day of the year, origin one-hot with
//! a slot for unseen ones, the car's name, free text, left out, every feature
//! standardised as the tutorial's `Normalization` layer does); the tutorial's model: two Dense(64) ReLU layers and a linear
//! output, mean absolute error, Adam at 1e-3.
//!
//! The `auto_mpg` example and the `clean_tables` test use it;
//! `examples/python/auto_mpg_keras.py` is the tutorial's Keras program on the same
//! rows.

use std::path::Path;

use kiln::data::frame::{Frame, ReadOptions};
use kiln::data::split::split;
use kiln::data::{FittedPipeline, Impute, TablePipeline};
use kiln::prelude::*;
use kiln::train::Result;
use kiln::train::checkpoint::{self, CheckpointExtra};

use crate::cleaned::{Cleaned, clean, raw_inputs};

/// The records' file name in the data folder.
pub const FILE: &str = "auto_mpg.json";

/// The column to predict.
pub const TARGET: &str = "Miles_per_Gallon";

/// The fraction of the labelled rows held out for validation (the tutorial's
/// `validation_split=0.2` of its 80 % training part).
pub const VALIDATION: f64 = 0.16;
/// The fraction held out for testing (the tutorial's 20 %).
pub const TEST: f64 = 0.2;

/// The seed of the split; `auto_mpg_keras.py` computes the same split from it.
pub const SPLIT_SEED: u64 = 0;

kiln::model! {
    /// TensorFlow's `dnn_model`: 11 cleaned features, two hidden layers of 64, and
    /// the miles per gallon.
    pub struct MpgNet {
        input: [11],
        fc1: Dense(64, relu),
        fc2: Dense(64, relu),
        out: Dense(1),
    }
}

/// Every record (`raw`), the three cleaned parts of those with a target, and the
/// cleaning fitted on the training part.
pub type Tables = Cleaned;

/// The cleaning, before it is fitted.
pub fn pipeline() -> TablePipeline {
    TablePipeline::new(TARGET)
        .impute(Impute::Median)
        // The tutorial's `Normalization` layer standardises every input, the
        // one-hot origin too.
        .scale_every_feature()
        .standardize()
}

/// Reads `dir/auto_mpg.json`, drops the records without a target, splits and
/// cleans the parts.
pub fn load(dir: &Path) -> Result<Tables> {
    let records = Frame::read_json(dir.join(FILE), &ReadOptions::new())?;
    let labelled = records.drop_missing(TARGET)?;
    if labelled.is_empty() {
        return Err(kiln::data::Error::Column {
            path: dir.join(FILE),
            column: TARGET.into(),
            message: format!(
                "every one of the {} records misses it: nothing to train on",
                records.len()
            ),
        }
        .into());
    }
    let split = split(labelled.len(), VALIDATION, TEST, SPLIT_SEED)?;
    let width = <MpgNet>::INPUT_SHAPE.size();
    clean(records, &labelled, &split, &pipeline(), width)
}

/// A fresh [`MpgNet`] with mean absolute error, Adam at 1e-3 (Keras's) and the
/// mean absolute error as metric.
pub fn trainer(cpu: &Cpu, batch_size: usize, seed: u64) -> Result<Trainer<Cpu, MpgNet>> {
    let model = MpgNet::new(cpu, batch_size, seed)?;
    Ok(Trainer::new(
        model,
        Loss::mean_absolute_error(),
        Optimizer::new(Adam::default()),
    )?
    .metrics([Metric::MeanAbsoluteError]))
}

/// Training options: the seed and validation after every epoch, as the tutorial's
/// `fit` (no early stopping).
pub fn fit_options(
    tables: &Tables,
    epochs: usize,
    batch_size: usize,
    seed: u64,
) -> FitOptions<Cpu, MpgNet> {
    FitOptions::new(epochs, batch_size)
        .seed(seed)
        .validation_data(tables.validation.clone())
}

/// Saves the trained model with its cleaning to `path`.
pub fn save(path: &Path, model: &MpgNet, cleaning: &FittedPipeline) -> Result<()> {
    checkpoint::save_with_preprocessing(path, model, &CheckpointExtra::default(), cleaning)
}

/// The miles per gallon a model saved with [`save`] predicts for raw JSON records
/// (`null` or absent cells, the origin as a word, the year as a date); everything
/// comes from the checkpoint, nothing from training.
pub fn predict_raw(cpu: &Cpu, path: &Path, records: &[u8]) -> Result<Vec<f32>> {
    let mut model = MpgNet::new(cpu, 32, 0)?;
    let info = checkpoint::load_weights(path, &mut model)?;
    let (_, inputs) = raw_inputs(path, &info, records, true)?;
    let mut predictor = Trainer::new(
        model,
        Loss::mean_absolute_error(),
        Optimizer::new(Adam::default()),
    )?;
    predictor.predict(inputs, 32, &Pipeline::new())
}
