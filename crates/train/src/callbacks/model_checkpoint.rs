//! [`ModelCheckpoint`]: save the model (and the optimizer) after epochs.

use std::path::{Path, PathBuf};

use kiln_kernels::Backend;
use kiln_nn::Model;

use super::{Callback, Context, MonitorMode, monitored};
use crate::checkpoint;
use crate::{EpochLog, Result};

/// Saves a safetensors checkpoint after every epoch, or only when `monitor` improves
/// (Keras's `ModelCheckpoint`). The path may hold `{epoch}` (from 1, as Keras prints
/// it). Writes are atomic: a crash mid-write leaves the previous file intact.
///
/// A write that fails (a full disk, a read-only folder) stops `fit` with the error,
/// which names the file; with [`ModelCheckpoint::warn_on_error`] it prints a warning
/// instead and training goes on, the previous checkpoint left as it was.
#[derive(Debug)]
pub struct ModelCheckpoint {
    /// Where to write; `{epoch}` is replaced by the epoch number.
    pub path: PathBuf,
    /// The logged value that decides what is best.
    pub monitor: String,
    /// Whether it should go down or up.
    pub mode: MonitorMode,
    /// Save only when `monitor` improves.
    pub save_best_only: bool,
    best: Option<f64>,
    /// Warn and train on when a write fails, instead of stopping.
    pub warn_on_error: bool,
    /// The files written, in order.
    pub saved: Vec<PathBuf>,
    /// The writes that failed with `warn_on_error`: the file and the error.
    pub failed: Vec<(PathBuf, String)>,
}

impl ModelCheckpoint {
    /// Saves to `path` after every epoch, monitoring `val_loss` for `save_best_only`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            monitor: "val_loss".into(),
            mode: MonitorMode::Auto,
            save_best_only: false,
            best: None,
            warn_on_error: false,
            saved: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// The same, printing a warning and training on when a write fails (the previous
    /// checkpoint stays as it was), instead of stopping `fit` with the error.
    #[must_use]
    pub fn warn_on_error(mut self, on: bool) -> Self {
        self.warn_on_error = on;
        self
    }

    /// The same, saving only when `monitor` improves.
    #[must_use]
    pub fn best_only(mut self, monitor: impl Into<String>) -> Self {
        self.monitor = monitor.into();
        self.save_best_only = true;
        self
    }

    fn path_for(&self, epoch: usize) -> PathBuf {
        let text = self.path.to_string_lossy();
        if text.contains("{epoch}") {
            PathBuf::from(text.replace("{epoch}", &format!("{:02}", epoch + 1)))
        } else {
            self.path.clone()
        }
    }
}

impl<B: Backend, M: Model<B>> Callback<B, M> for ModelCheckpoint {
    fn root_only(&self) -> bool {
        true
    }

    fn on_epoch_end(&mut self, log: &EpochLog, ctx: &mut Context<'_, B, M>) -> Result<()> {
        if self.save_best_only {
            let Some(value) = monitored(log, &self.monitor, "ModelCheckpoint")? else {
                return Ok(());
            };
            let up = self.mode.maximise(&self.monitor);
            let better = match self.best {
                None => value.is_finite(),
                Some(best) => (up && value > best) || (!up && value < best),
            };
            if !better {
                return Ok(());
            }
            self.best = Some(value);
        }
        let path = self.path_for(log.epoch);
        match save(&path, ctx, log.epoch) {
            Ok(()) => self.saved.push(path),
            Err(e) if self.warn_on_error => {
                eprintln!(
                    "warning: the checkpoint of epoch {} was not saved: {e}",
                    log.epoch + 1
                );
                self.failed.push((path, e.to_string()));
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

fn save<B: Backend, M: Model<B>>(path: &Path, ctx: &Context<'_, B, M>, epoch: usize) -> Result<()> {
    checkpoint::save(
        path,
        &*ctx.model,
        &checkpoint::CheckpointExtra {
            optimizer: Some(&*ctx.optimizer),
            epoch: Some(epoch),
            history: Some(ctx.history),
        },
    )
}
