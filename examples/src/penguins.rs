//! The penguins recipe: the species of 344 Palmer Archipelago penguins (Adelie,
//! Chinstrap, Gentoo) from their bill, flipper and body mass, their island and sex,
//! as the raw table gives them: `NA` cells, two category columns. Split 60 / 20 / 20
//! with the species' proportions kept; the cleaning fitted on the training part
//! (rows missing most measurements dropped, gaps imputed with the training mean or
//! most frequent sex and flagged, categories one-hot with a slot for unseen ones,
//! numbers standardised); a small softmax classifier.
//!
//! The `penguins` example and the `clean_tables` test use it.

use std::path::Path;

use kiln::data::frame::{Frame, ReadOptions};
use kiln::data::split::split_stratified;
use kiln::data::{FittedPipeline, TablePipeline};
use kiln::prelude::*;
use kiln::train::Result;
use kiln::train::checkpoint::{self, CheckpointExtra};

use crate::cleaned::{Cleaned, clean, raw_inputs};

/// The table's file name in the data folder.
pub const FILE: &str = "penguins.csv";

/// The column to predict.
pub const TARGET: &str = "species";

/// The fractions of the rows held out for validation and for testing.
pub const VALIDATION: f64 = 0.2;
/// See [`VALIDATION`].
pub const TEST: f64 = 0.2;

/// The seed of the split, fixed so that every `--seed` is measured on the same rows.
pub const SPLIT_SEED: u64 = 0;

kiln::model! {
    /// 12 cleaned features (island one-hot and its unseen slot, four standardised
    /// measurements, sex one-hot, its unseen slot and its missing flag), one hidden
    /// layer of 16, and the probabilities of the three species.
    pub struct PenguinNet {
        input: [12],
        fc1: Dense(16, relu),
        out: Dense(3, softmax),
    }
}

/// The table, its three cleaned parts and the cleaning fitted on the training part.
pub type Tables = Cleaned;

/// The cleaning, before it is fitted.
pub fn pipeline() -> TablePipeline {
    TablePipeline::new(TARGET)
        .drop_columns(["year"])
        .drop_rows_missing_over(0.5)
        .missing_indicators()
        .standardize()
}

/// Reads `dir/penguins.csv`, splits it (stratified) and cleans the parts.
pub fn load(dir: &Path) -> Result<Tables> {
    let raw = Frame::read_csv(dir.join(FILE), &ReadOptions::new())?;
    let split = split_stratified(&raw.labels(TARGET)?, VALIDATION, TEST, SPLIT_SEED)?;
    let width = <PenguinNet>::INPUT_SHAPE.size();
    clean(raw.clone(), &raw, &split, &pipeline(), width)
}

/// A fresh [`PenguinNet`] (built for batches of up to `batch_size`) with sparse
/// categorical cross-entropy, Adam (Keras's defaults) and accuracy.
pub fn trainer(cpu: &Cpu, batch_size: usize, seed: u64) -> Result<Trainer<Cpu, PenguinNet>> {
    let model = PenguinNet::new(cpu, batch_size, seed)?;
    Ok(Trainer::new(
        model,
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()),
    )?
    .metrics([Metric::Accuracy]))
}

/// Training options: the seed and validation after every epoch. The features are
/// cleaned and standardised already, so the batcher's pipeline is the identity.
pub fn fit_options(
    tables: &Tables,
    epochs: usize,
    batch_size: usize,
    seed: u64,
) -> FitOptions<Cpu, PenguinNet> {
    FitOptions::new(epochs, batch_size)
        .seed(seed)
        .validation_data(tables.validation.clone())
}

/// Saves the trained model with its cleaning to `path`.
pub fn save(path: &Path, model: &PenguinNet, cleaning: &FittedPipeline) -> Result<()> {
    checkpoint::save_with_preprocessing(path, model, &CheckpointExtra::default(), cleaning)
}

/// The species a model saved with [`save`] predicts for raw CSV rows (a header,
/// then rows as the table holds them: `NA` cells, islands and sexes as words), and
/// its probability; everything comes from the checkpoint, nothing from training.
pub fn predict_raw(cpu: &Cpu, path: &Path, rows: &[u8]) -> Result<Vec<(String, f32)>> {
    let mut model = PenguinNet::new(cpu, 16, 0)?;
    let info = checkpoint::load_weights(path, &mut model)?;
    let (cleaning, inputs) = raw_inputs(path, &info, rows, false)?;
    let loss = Loss::sparse_categorical_crossentropy();
    let mut predictor = Trainer::new(model, loss, Optimizer::new(Adam::default()))?;
    let probabilities = predictor.predict(inputs, 16, &Pipeline::new())?;
    let classes = &cleaning.target().classes;
    Ok(probabilities
        .chunks_exact(classes.len().max(1))
        .map(|p| {
            let best = (0..p.len()).fold(0, |b, k| if p[k] > p[b] { k } else { b });
            (classes[best].clone(), p[best])
        })
        .collect())
}
