//! The training loop of kiln: Keras's `compile` / `fit` / `evaluate` / `predict` on a
//! model that `model!` generated, with metrics, callbacks, progress, checkpoints and
//! plots.

pub mod callbacks;
pub mod checkpoint;
mod error;
mod history;
pub mod metrics;
pub mod plot;
mod progress;
mod trainer;

pub use callbacks::{
    Callback, Context, CsvLogger, EarlyStopping, LearningRateScheduler, Mode, ModelCheckpoint,
    ReduceLrOnPlateau,
};
pub use checkpoint::{CheckpointExtra, CheckpointInfo, Weights};
pub use error::{Error, Result};
pub use history::{EpochLog, History};
pub use metrics::{ConfusionMatrix, Metric};
pub use plot::{plot_history, plot_runs};
pub use progress::Verbosity;
pub use trainer::{Evaluation, FitOptions, SharedData, Trainer, Validation};
