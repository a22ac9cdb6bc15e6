//! Callbacks: code that `fit` runs at the start and end of training, of each epoch
//! and of each batch, with the model and the optimizer in reach (Keras's
//! `callbacks=`).
//!
//! [`EarlyStopping`], [`ModelCheckpoint`], [`LearningRateScheduler`],
//! [`ReduceLrOnPlateau`], [`CsvLogger`] and [`TensorBoard`] ship with kiln; implement [`Callback`] for
//! your own. Stopping on a non-finite loss is built into `fit` (on by default).

mod csv_logger;
mod early_stopping;
mod learning_rate;
mod model_checkpoint;
mod tensorboard;

pub use csv_logger::CsvLogger;
pub use early_stopping::EarlyStopping;
pub use learning_rate::{LearningRateScheduler, ReduceLrOnPlateau};
pub use model_checkpoint::ModelCheckpoint;
pub use tensorboard::TensorBoard;

use kiln_data::Dataset;
use kiln_kernels::Backend;
use kiln_nn::Model;
use kiln_optim::Optimizer;

use crate::{EpochLog, History, Result};

/// What a callback can reach while training runs.
pub struct Context<'a, B: Backend, M: Model<B>> {
    /// The model being trained.
    pub model: &'a mut M,
    /// Its optimizer.
    pub optimizer: &'a mut Optimizer<B>,
    /// The epochs finished so far.
    pub history: &'a History,
    /// The training data as `fit` batches it (less a held-out validation split).
    pub data: &'a dyn Dataset,
    /// Samples a batch (the last batch of an epoch may have fewer).
    pub batch_size: usize,
    /// Batches an epoch.
    pub steps: usize,
    pub(crate) stop: &'a mut bool,
}

impl<B: Backend, M: Model<B>> Context<'_, B, M> {
    /// Asks `fit` to stop after the current epoch.
    pub fn stop_training(&mut self) {
        *self.stop = true;
    }

    /// Whether a callback asked to stop.
    pub fn stopping(&self) -> bool {
        *self.stop
    }
}

/// Code run by `fit` around epochs and batches. Every method does nothing by default.
pub trait Callback<B: Backend, M: Model<B>> {
    /// Before the first epoch.
    fn on_train_begin(&mut self, _ctx: &mut Context<'_, B, M>) -> Result<()> {
        Ok(())
    }

    /// Before epoch `epoch` (from 0).
    fn on_epoch_begin(&mut self, _epoch: usize, _ctx: &mut Context<'_, B, M>) -> Result<()> {
        Ok(())
    }

    /// After batch `step` of the epoch, with its loss.
    fn on_batch_end(
        &mut self,
        _step: usize,
        _loss: f32,
        _ctx: &mut Context<'_, B, M>,
    ) -> Result<()> {
        Ok(())
    }

    /// After an epoch and its validation, with its figures (already in the history).
    fn on_epoch_end(&mut self, _log: &EpochLog, _ctx: &mut Context<'_, B, M>) -> Result<()> {
        Ok(())
    }

    /// After the last epoch (or a stop).
    fn on_train_end(&mut self, _ctx: &mut Context<'_, B, M>) -> Result<()> {
        Ok(())
    }

    /// Whether, in data-parallel training, only rank 0 runs this callback: true for
    /// those that write files (checkpoints, logs), which every rank would otherwise
    /// write at once; false by default, since a callback that changes training (a
    /// schedule, a stop) must run on every rank alike.
    fn root_only(&self) -> bool {
        false
    }
}

/// Whether a monitored value improves by going down or up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorMode {
    /// Up for names with `acc`, `precision`, `recall`, `f1` or `r2`, down otherwise
    /// (as Keras guesses).
    Auto,
    /// Smaller is better.
    Min,
    /// Larger is better.
    Max,
}

impl MonitorMode {
    /// Whether larger is better for `monitor`.
    pub(crate) fn maximise(self, monitor: &str) -> bool {
        match self {
            MonitorMode::Min => false,
            MonitorMode::Max => true,
            MonitorMode::Auto => ["acc", "precision", "recall", "f1", "r2"]
                .iter()
                .any(|k| monitor.contains(k)),
        }
    }
}

/// The value of `monitor` in `log`; `None` when it is a validation value and the
/// epoch ran no validation (`FitOptions::validation_freq`), so the callback skips
/// the epoch; an error that lists what was logged otherwise.
pub(crate) fn monitored(log: &EpochLog, monitor: &str, who: &str) -> Result<Option<f64>> {
    if let Some(value) = log.get(monitor) {
        return Ok(Some(value));
    }
    let validated = log.values.iter().any(|(n, _)| n.starts_with("val_"));
    if monitor.starts_with("val_") && !validated {
        return Ok(None);
    }
    let names: Vec<&str> = log.values.iter().map(|(n, _)| n.as_str()).collect();
    Err(crate::Error::Config(format!(
        "{who} monitors `{monitor}`, which is not logged; logged: {}",
        names.join(", ")
    )))
}
