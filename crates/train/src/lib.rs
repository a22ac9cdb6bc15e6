//! The training loop of kiln: Keras's `compile` / `fit` / `evaluate` / `predict` on a
//! model that `model!` generated, with metrics, callbacks, progress, checkpoints and
//! plots.

mod error;
mod history;
pub mod plot;

pub use error::{Error, Result};
pub use history::{EpochLog, History};
pub use plot::{plot_history, plot_runs};
