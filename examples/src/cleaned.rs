//! What the raw-table recipes (`penguins`, `auto_mpg`) train and test on: a raw
//! table split in three, each part cleaned with the statistics fitted on the
//! training part only.

use std::path::Path;

use kiln::data::frame::Frame;
use kiln::data::split::Split;
use kiln::data::{FittedPipeline, InMemory, TablePipeline};
use kiln::train::checkpoint::CheckpointInfo;
use kiln::train::{Error, Result};

/// A raw table, its cleaning and its three cleaned parts.
#[derive(Clone, Debug)]
pub struct Cleaned {
    /// The table as read.
    pub raw: Frame,
    /// The raw rows of the test part (to predict on raw rows).
    pub raw_test: Frame,
    /// The cleaning, fitted on the training part only.
    pub cleaning: FittedPipeline,
    /// The rows to train on, cleaned.
    pub train: InMemory,
    /// The rows validated on after every epoch.
    pub validation: InMemory,
    /// The held-out rows of the final figures.
    pub test: InMemory,
}

/// Splits `labelled` (rows of `raw` with a target) by `split`, fits `pipeline` on
/// the training part and cleans the three parts; an error unless the cleaning
/// gives `width` features, the model's input.
pub fn clean(
    raw: Frame,
    labelled: &Frame,
    split: &Split,
    pipeline: &TablePipeline,
    width: usize,
) -> Result<Cleaned> {
    let train = labelled.select(&split.train)?;
    let validation = labelled.select(&split.validation)?;
    let test = labelled.select(&split.test)?;
    // Fitted on the training part only: validation and test stay unseen.
    let cleaning = pipeline.fit(&train)?;
    cleaning.check_width(width)?;
    Ok(Cleaned {
        train: cleaning.transform(&train)?,
        validation: cleaning.transform(&validation)?,
        test: cleaning.transform(&test)?,
        raw,
        raw_test: test,
        cleaning,
    })
}

/// The cleaning saved in the checkpoint at `path` (whose `info` was read as its
/// weights were loaded) and the model's inputs for `rows`, raw as the table holds
/// them: a CSV text with a header, or (`json`) a JSON array of records.
pub fn raw_inputs(
    path: &Path,
    info: &CheckpointInfo,
    rows: &[u8],
    json: bool,
) -> Result<(FittedPipeline, InMemory)> {
    let cleaning = info.preprocessing()?.ok_or_else(|| Error::Checkpoint {
        path: path.to_path_buf(),
        detail: "holds no fitted cleaning; save it with save_with_preprocessing".into(),
    })?;
    let options = cleaning.read_options();
    let frame = if json {
        Frame::parse_json(rows, "raw rows", &options)?
    } else {
        Frame::parse_csv(rows, "raw rows", &options)?
    };
    let inputs = cleaning.inputs(&frame)?;
    Ok((cleaning, inputs))
}
