//! The errors of `kiln-train`.

use std::path::PathBuf;

/// What went wrong while training, evaluating, predicting, saving or loading.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model failed.
    #[error(transparent)]
    Model(#[from] kiln_nn::Error),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] kiln_kernels::Error),
    /// The loss failed (bad labels, non-finite outputs, ...).
    #[error(transparent)]
    Loss(#[from] kiln_losses::Error),
    /// The optimizer failed.
    #[error(transparent)]
    Optimizer(#[from] kiln_optim::Error),
    /// The data failed.
    #[error(transparent)]
    Data(#[from] kiln_data::Error),
    /// The ranks of a data-parallel run disagree, or one of them failed.
    #[error(transparent)]
    Distributed(#[from] kiln_distributed::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A TensorBoard log folder or file that could not be created.
    #[error("cannot write TensorBoard logs to {}: {source}", path.display())]
    TensorBoard {
        /// The folder or file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A checkpoint that does not fit the model (names, shapes) or is not a valid
    /// safetensors file.
    #[error("{path}: {detail}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What differs or is wrong.
        detail: String,
    },
    /// A plot could not be drawn or written (nothing to plot, a missing metric, a failed
    /// render or PNG encoding).
    #[error("{path}: {detail}")]
    Plot {
        /// The PNG file asked for.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A non-finite loss, output or gradient stopped training.
    #[error("training stopped at epoch {epoch}, step {step}: {detail}")]
    NonFinite {
        /// The epoch (from 0).
        epoch: usize,
        /// The batch within the epoch (from 0).
        step: usize,
        /// What went non-finite, and where.
        detail: String,
    },
    /// A sample's input holds NaN or an infinity: the data is at fault, not the model.
    #[error(
        "training stopped at epoch {epoch}, step {step}: the input of sample {index} of the data set{} holds {value} (at value {position} of the sample); the model's output went non-finite because of it: clean or drop that sample",
        origin.as_ref().map(|o| format!(" (from {o})")).unwrap_or_default()
    )]
    NonFiniteInput {
        /// The epoch (from 0).
        epoch: usize,
        /// The batch within the epoch (from 0).
        step: usize,
        /// The sample's index in the data set given to `fit`.
        index: usize,
        /// The value's position in the sample (after the pipeline).
        position: usize,
        /// The value.
        value: f32,
        /// Where the sample came from, when the data set knows
        /// ([`Dataset::origin`](kiln_data::Dataset::origin)).
        origin: Option<kiln_data::Origin>,
    },
    /// A class label beyond the model's classes, found before the first step.
    #[error(
        "the label of {data} sample {index} is {label}, but {model} has {classes} classes (0..{classes}); checked before the first step, so no weight changed"
    )]
    Label {
        /// `training` or `validation`.
        data: &'static str,
        /// The sample's index in that data set.
        index: usize,
        /// The label.
        label: u32,
        /// The model's classes.
        classes: usize,
        /// The model.
        model: &'static str,
    },
    /// Options or data that do not fit the model.
    #[error("{0}")]
    Config(String),
    /// A hyper-parameter search that cannot go on, or a trial's bad request: a
    /// parameter suggested with an empty range or with another range than before, a
    /// study folder written by another study's definition, a state file that cannot
    /// be read.
    #[error("study `{study}`: {detail}")]
    Study {
        /// The study's name.
        study: String,
        /// What was wrong, and what to do.
        detail: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
