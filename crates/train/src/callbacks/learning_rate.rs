//! Learning-rate callbacks: a schedule over epochs, and a reduction on a plateau.

use std::sync::Arc;

use kiln_kernels::Backend;
use kiln_nn::Model;
use kiln_optim::{Monitor, Schedule};

use super::{Callback, Context, MonitorMode, monitored};
use crate::{EpochLog, Result};

/// Sets the learning rate at the start of every epoch from a schedule of the epoch
/// (Keras's `LearningRateScheduler`, PyTorch's `scheduler.step()` once an epoch).
/// For a schedule over batches, give it to the optimizer instead.
#[derive(Clone, Debug)]
pub struct LearningRateScheduler {
    schedule: Arc<dyn Schedule>,
}

impl LearningRateScheduler {
    /// A scheduler following `schedule`, whose step is the epoch.
    pub fn new(schedule: impl Schedule + 'static) -> Self {
        Self {
            schedule: Arc::new(schedule),
        }
    }
}

impl<B: Backend, M: Model<B>> Callback<B, M> for LearningRateScheduler {
    fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut Context<'_, B, M>) -> Result<()> {
        let lr = self.schedule.learning_rate(epoch as u64);
        ctx.optimizer.set_learning_rate(lr)?;
        Ok(())
    }
}

/// Lowers the learning rate when `monitor` stops improving: the rules of
/// [`kiln_optim::ReduceLrOnPlateau`] (PyTorch's), checked once an epoch.
#[derive(Clone, Debug)]
pub struct ReduceLrOnPlateau {
    /// The logged value to watch.
    pub monitor: String,
    /// The reduction rules and their state.
    pub rule: kiln_optim::ReduceLrOnPlateau,
}

impl ReduceLrOnPlateau {
    /// Watches `monitor` with PyTorch's defaults (factor 0.1, patience 10).
    pub fn new(monitor: impl Into<String>, mode: MonitorMode) -> Self {
        let monitor = monitor.into();
        let direction = if mode.maximise(&monitor) {
            Monitor::Max
        } else {
            Monitor::Min
        };
        Self {
            rule: kiln_optim::ReduceLrOnPlateau::new(direction),
            monitor,
        }
    }

    /// The same with another factor.
    #[must_use]
    pub fn factor(mut self, factor: f64) -> Self {
        self.rule.factor = factor;
        self
    }

    /// The same with another patience.
    #[must_use]
    pub fn patience(mut self, patience: u32) -> Self {
        self.rule.patience = patience;
        self
    }

    /// The same with a floor.
    #[must_use]
    pub fn min_lr(mut self, min_lr: f64) -> Self {
        self.rule.min_lr = min_lr;
        self
    }
}

impl<B: Backend, M: Model<B>> Callback<B, M> for ReduceLrOnPlateau {
    fn on_epoch_end(&mut self, log: &EpochLog, ctx: &mut Context<'_, B, M>) -> Result<()> {
        let Some(value) = monitored(log, &self.monitor, "ReduceLrOnPlateau")? else {
            return Ok(());
        };
        let lr = self.rule.observe(value, ctx.optimizer.learning_rate());
        ctx.optimizer.set_learning_rate(lr)?;
        Ok(())
    }
}
