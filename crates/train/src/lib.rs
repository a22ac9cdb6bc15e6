//! The training loop of kiln: Keras's `compile` / `fit` / `evaluate` / `predict` on a
//! model that `model!` generated, with metrics, callbacks, progress, checkpoints and
//! plots.

pub mod checkpoint;
mod error;
mod history;
pub mod plot;

pub use checkpoint::{CheckpointExtra, CheckpointInfo, Weights};
pub use error::{Error, Result};
pub use history::{EpochLog, History};
pub use plot::{plot_history, plot_runs};
