//! [`EarlyStopping`]: stop when a monitored value stops improving.

use kiln_kernels::Backend;
use kiln_nn::Model;

use super::{Callback, Context, MonitorMode, monitored};
use crate::checkpoint::Weights;
use crate::{EpochLog, Result};

/// Stops training when `monitor` has not improved by more than `min_delta` for
/// `patience` epochs (Keras's `EarlyStopping`); optionally puts back the weights of
/// the best epoch.
#[derive(Debug)]
pub struct EarlyStopping {
    /// The logged value to watch (`val_loss`).
    pub monitor: String,
    /// Whether it should go down or up.
    pub mode: MonitorMode,
    /// Epochs without improvement tolerated.
    pub patience: usize,
    /// The smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Put back the best epoch's weights when training stops (or ends).
    pub restore_best_weights: bool,
    best: Option<f64>,
    best_epoch: usize,
    wait: usize,
    best_weights: Option<Weights>,
    /// The epoch training stopped after, if it did.
    pub stopped_epoch: Option<usize>,
}

impl EarlyStopping {
    /// Watches `monitor` with Keras's defaults: auto mode, patience 0, no minimum
    /// change, the last weights kept.
    pub fn new(monitor: impl Into<String>) -> Self {
        Self {
            monitor: monitor.into(),
            mode: MonitorMode::Auto,
            patience: 0,
            min_delta: 0.0,
            restore_best_weights: false,
            best: None,
            best_epoch: 0,
            wait: 0,
            best_weights: None,
            stopped_epoch: None,
        }
    }

    /// The same with `patience` epochs of tolerance.
    #[must_use]
    pub fn patience(mut self, patience: usize) -> Self {
        self.patience = patience;
        self
    }

    /// The same with a minimum improvement.
    #[must_use]
    pub fn min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta;
        self
    }

    /// The same with a mode.
    #[must_use]
    pub fn mode(mut self, mode: MonitorMode) -> Self {
        self.mode = mode;
        self
    }

    /// The same, putting back the best weights at the end.
    #[must_use]
    pub fn restore_best_weights(mut self, on: bool) -> Self {
        self.restore_best_weights = on;
        self
    }

    /// The best epoch so far (from 0), and its value.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best.map(|b| (self.best_epoch, b))
    }
}

impl<B: Backend, M: Model<B>> Callback<B, M> for EarlyStopping {
    fn on_train_begin(&mut self, _ctx: &mut Context<'_, B, M>) -> Result<()> {
        self.best = None;
        self.wait = 0;
        self.stopped_epoch = None;
        self.best_weights = None;
        Ok(())
    }

    fn on_epoch_end(&mut self, log: &EpochLog, ctx: &mut Context<'_, B, M>) -> Result<()> {
        let Some(value) = monitored(log, &self.monitor, "EarlyStopping")? else {
            return Ok(());
        };
        let up = self.mode.maximise(&self.monitor);
        let improved = match self.best {
            None => value.is_finite(),
            Some(best) if up => value - self.min_delta > best,
            Some(best) => value + self.min_delta < best,
        };
        if improved {
            self.best = Some(value);
            self.best_epoch = log.epoch;
            self.wait = 0;
            if self.restore_best_weights {
                self.best_weights = Some(Weights::of(&*ctx.model)?);
            }
            return Ok(());
        }
        self.wait += 1;
        if self.wait > self.patience {
            self.stopped_epoch = Some(log.epoch);
            ctx.stop_training();
        }
        Ok(())
    }

    fn on_train_end(&mut self, ctx: &mut Context<'_, B, M>) -> Result<()> {
        if let Some(weights) = &self.best_weights {
            weights.restore(&mut *ctx.model)?;
        }
        Ok(())
    }
}
