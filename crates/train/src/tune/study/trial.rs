//! [`Trial`]: one run of the objective, which asks it for parameter values
//! (`suggest_*`) and reports how training goes (`report`, [`PruningCallback`]).

use std::fmt::Display;
use std::sync::{Arc, Mutex, PoisonError};

use kiln_kernels::Backend;
use kiln_nn::Model;

use super::pruners::Pruner;
use super::samplers::{SampleContext, Sampler};
use super::storage::{Definition, Storage};
use super::{Direction, TrialRecord};
use crate::callbacks::{Callback, Context, monitored};
use crate::{EpochLog, Error, Result};

/// The range a parameter is drawn from. Values are held as `f64`: a float's value,
/// an integer's value, a category's index.
#[derive(Clone, Debug, PartialEq)]
pub enum Distribution {
    /// A real number in `low..=high`, drawn uniformly in its logarithm when `log`.
    Float {
        /// The lowest value.
        low: f64,
        /// The highest value.
        high: f64,
        /// Uniform in `ln x` rather than in `x`.
        log: bool,
    },
    /// An integer in `low..=high`, drawn uniformly in its logarithm when `log`.
    Int {
        /// The lowest value.
        low: i64,
        /// The highest value.
        high: i64,
        /// Uniform in `ln x` rather than in `x`.
        log: bool,
    },
    /// One of several choices, by index, shown as each choice's text.
    Categorical {
        /// The choices as text.
        choices: Vec<String>,
    },
}

/// How a number is drawn from its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Uniformly.
    Linear,
    /// Uniformly in its logarithm (learning rates, weight decays).
    Log,
}

impl Distribution {
    /// Whether the range is one the samplers can draw from; else what is wrong.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        match self {
            Self::Float { low, high, log } => {
                if !(low.is_finite() && high.is_finite()) {
                    Err(format!("the range {low}..={high} is not finite"))
                } else if low > high {
                    Err(format!("the range {low}..={high} is empty"))
                } else if *log && *low <= 0.0 {
                    Err(format!("a log range must be positive, not {low}..={high}"))
                } else {
                    Ok(())
                }
            }
            Self::Int { low, high, log } => {
                if low > high {
                    Err(format!("the range {low}..={high} is empty"))
                } else if *log && *low <= 0 {
                    Err(format!("a log range must be positive, not {low}..={high}"))
                } else {
                    Ok(())
                }
            }
            Self::Categorical { choices } if choices.is_empty() => {
                Err("there are no choices".into())
            }
            Self::Categorical { .. } => Ok(()),
        }
    }

    /// The range in the space the samplers work in (the logarithm for a log range; an
    /// integer's range widened by half a step either side, so that rounding gives each
    /// integer the same share), for numbers.
    pub(crate) fn internal_range(&self) -> Option<(f64, f64)> {
        match *self {
            Self::Float { low, high, log } => Some(if log {
                (low.ln(), high.ln())
            } else {
                (low, high)
            }),
            Self::Int { low, high, log } => {
                let (low, high) = (low as f64 - 0.5, high as f64 + 0.5);
                Some(if log {
                    (low.max(0.5).ln(), high.ln())
                } else {
                    (low, high)
                })
            }
            Self::Categorical { .. } => None,
        }
    }

    /// The value for `x` of the internal space.
    pub(crate) fn value_of(&self, x: f64) -> f64 {
        match *self {
            Self::Float { low, high, log } => {
                let v = if log { x.exp() } else { x };
                v.clamp(low, high)
            }
            Self::Int { low, high, log } => {
                let v = if log { x.exp() } else { x };
                v.round().clamp(low as f64, high as f64)
            }
            Self::Categorical { ref choices } => x.round().clamp(0.0, (choices.len() - 1) as f64),
        }
    }

    /// `value` in the internal space.
    pub(crate) fn to_internal(&self, value: f64) -> f64 {
        match *self {
            Self::Float { log: true, .. } | Self::Int { log: true, .. } => value.ln(),
            _ => value,
        }
    }

    /// Whether `value` is one this range can give.
    pub(crate) fn contains(&self, value: f64) -> bool {
        match self {
            Self::Float { low, high, .. } => (*low..=*high).contains(&value),
            Self::Int { low, high, .. } => {
                value.fract() == 0.0 && (*low as f64..=*high as f64).contains(&value)
            }
            Self::Categorical { choices } => {
                value.fract() == 0.0 && value >= 0.0 && (value as usize) < choices.len()
            }
        }
    }

    /// `value` as the user reads it: the number, or the choice's text.
    pub fn display(&self, value: f64) -> String {
        match self {
            Self::Float { .. } => format!("{value}"),
            Self::Int { .. } => format!("{}", value as i64),
            Self::Categorical { choices } => choices
                .get(value as usize)
                .cloned()
                .unwrap_or_else(|| format!("#{value}")),
        }
    }
}

/// One parameter of a trial: its name, range and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// The name the objective gave it.
    pub name: String,
    /// Its range.
    pub distribution: Distribution,
    /// Its value (a category's index).
    pub value: f64,
}

/// What a trial's training reports while it runs, shared with its pruning callback.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// (step, value), in the order reported.
    pub(crate) intermediate: Vec<(usize, f64)>,
    /// Whether the pruner stopped the trial.
    pub(crate) pruned: bool,
}

/// One run of the objective: it draws parameter values with `suggest_float`,
/// `suggest_int` and `suggest_categorical`, and reports how training goes so that a
/// pruner may stop it early ([`Trial::pruning`]).
///
/// A parameter keeps its range for the whole study: suggesting it with another range
/// is an error (a failed trial), as is an empty range.
pub struct Trial {
    pub(crate) number: usize,
    /// The number less the trials before it that re-ran an interrupted one: what the
    /// sampler draws from.
    pub(crate) index: usize,
    pub(crate) study: String,
    pub(crate) direction: Direction,
    pub(crate) seed: u64,
    pub(crate) params: Vec<Param>,
    /// Values to reuse (a trial interrupted by a crash, run again).
    pub(crate) fixed: Vec<Param>,
    pub(crate) history: Arc<Vec<TrialRecord>>,
    pub(crate) sampler: Arc<dyn Sampler>,
    pub(crate) pruner: Option<Arc<dyn Pruner>>,
    pub(crate) progress: Arc<Mutex<Progress>>,
    /// The study's folder, where each drawn parameter is written at once (a crash
    /// mid-trial leaves them for the trial that runs it again).
    pub(crate) storage: Option<(Storage, Definition)>,
}

impl std::fmt::Debug for Trial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trial")
            .field("number", &self.number)
            .field("params", &self.params)
            .finish()
    }
}

impl Trial {
    /// The trial's number in its study, from 0.
    pub fn number(&self) -> usize {
        self.number
    }

    /// The parameters drawn so far.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    fn error(&self, detail: String) -> Error {
        Error::Study {
            study: self.study.clone(),
            detail,
        }
    }

    /// The value of `name` in `distribution`: the value drawn earlier in this trial, a
    /// retried trial's value, or the sampler's.
    fn suggest(&mut self, name: &str, distribution: Distribution) -> Result<f64> {
        distribution
            .check()
            .map_err(|d| self.error(format!("parameter `{name}`: {d}")))?;
        if let Some(p) = self.params.iter().find(|p| p.name == name) {
            if p.distribution != distribution {
                return Err(self.error(format!(
                    "parameter `{name}` was suggested twice in trial {} with different \
                     ranges: {:?}, then {distribution:?}",
                    self.number, p.distribution
                )));
            }
            return Ok(p.value);
        }
        let earlier = self
            .history
            .iter()
            .flat_map(|t| t.params.iter())
            .find(|p| p.name == name);
        if let Some(p) = earlier
            && p.distribution != distribution
        {
            return Err(self.error(format!(
                "parameter `{name}` has the range {:?} in earlier trials, not \
                 {distribution:?}: a parameter keeps its range for the whole study (give \
                 the new range another name, or start another study)",
                p.distribution
            )));
        }
        let value = match self.fixed.iter().find(|p| p.name == name) {
            Some(p) if p.distribution == distribution && distribution.contains(p.value) => p.value,
            _ => {
                let context = SampleContext {
                    number: self.index,
                    seed: self.seed,
                    direction: self.direction,
                    history: &self.history,
                    earlier: &self.params,
                };
                distribution.value_of(self.sampler.sample(&context, name, &distribution))
            }
        };
        self.params.push(Param {
            name: name.to_string(),
            distribution,
            value,
        });
        if let Some((storage, definition)) = &self.storage {
            let _lock = storage.lock(&self.study)?;
            if let Some((_, mut trials)) = storage.load(&self.study)? {
                if let Some(t) = trials.iter_mut().find(|t| t.number == self.number) {
                    t.params.clone_from(&self.params);
                }
                storage.save(definition, &trials)?;
            }
        }
        Ok(value)
    }

    /// A real number in `low..=high`, uniform in its logarithm with [`Scale::Log`].
    pub fn suggest_float(&mut self, name: &str, low: f64, high: f64, scale: Scale) -> Result<f64> {
        let log = scale == Scale::Log;
        self.suggest(name, Distribution::Float { low, high, log })
    }

    /// An integer in `low..=high`, uniform in its logarithm with [`Scale::Log`].
    pub fn suggest_int(&mut self, name: &str, low: i64, high: i64, scale: Scale) -> Result<i64> {
        let log = scale == Scale::Log;
        let value = self.suggest(name, Distribution::Int { low, high, log })?;
        Ok(value as i64)
    }

    /// One of `choices` (a model variant, an optimizer, a width), each shown in the
    /// study's records by its `Display` text.
    pub fn suggest_categorical<T: Clone + Display>(
        &mut self,
        name: &str,
        choices: &[T],
    ) -> Result<T> {
        let texts = choices.iter().map(ToString::to_string).collect();
        let index = self.suggest(name, Distribution::Categorical { choices: texts })?;
        choices
            .get(index as usize)
            .cloned()
            .ok_or_else(|| self.error(format!("parameter `{name}`: there are no choices")))
    }

    /// Records the objective's intermediate `value` after `step` (an epoch counted from
    /// 1, say), for the pruner.
    pub fn report(&self, step: usize, value: f64) {
        lock(&self.progress).intermediate.push((step, value));
    }

    /// Whether the pruner has stopped the trial (asked through
    /// [`Trial::should_prune`] or the [`PruningCallback`]); unlike `should_prune`,
    /// this asks the pruner nothing.
    pub fn pruned(&self) -> bool {
        lock(&self.progress).pruned
    }

    /// Whether the pruner would stop the trial now, from what it has reported; once
    /// true, the trial is recorded as pruned whatever the objective returns.
    pub fn should_prune(&self) -> bool {
        should_prune(
            self.pruner.as_deref(),
            &self.progress,
            self.number,
            self.direction,
            &self.history,
        )
    }

    /// A callback for `fit` that reports `monitor` (`val_accuracy`) after every epoch
    /// (as step `epoch + 1`) and stops training when the pruner says so.
    pub fn pruning(&self, monitor: impl Into<String>) -> PruningCallback {
        PruningCallback {
            monitor: monitor.into(),
            number: self.number,
            direction: self.direction,
            pruner: self.pruner.clone(),
            history: Arc::clone(&self.history),
            progress: Arc::clone(&self.progress),
        }
    }
}

fn lock(progress: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    progress.lock().unwrap_or_else(PoisonError::into_inner)
}

fn should_prune(
    pruner: Option<&dyn Pruner>,
    progress: &Mutex<Progress>,
    number: usize,
    direction: Direction,
    history: &[TrialRecord],
) -> bool {
    let mut progress = lock(progress);
    if progress.pruned {
        return true;
    }
    let Some(pruner) = pruner else {
        return false;
    };
    let prune = pruner.prune(number, &progress.intermediate, history, direction);
    progress.pruned = prune;
    prune
}

/// Reports a monitored value to a trial after every epoch and stops `fit` when the
/// study's pruner says so; made by [`Trial::pruning`].
#[derive(Debug)]
pub struct PruningCallback {
    monitor: String,
    number: usize,
    direction: Direction,
    pruner: Option<Arc<dyn Pruner>>,
    history: Arc<Vec<TrialRecord>>,
    progress: Arc<Mutex<Progress>>,
}

impl<B: Backend, M: Model<B>> Callback<B, M> for PruningCallback {
    fn on_epoch_end(&mut self, log: &EpochLog, ctx: &mut Context<'_, B, M>) -> Result<()> {
        let Some(value) = monitored(log, &self.monitor, "the pruning callback")? else {
            return Ok(());
        };
        lock(&self.progress)
            .intermediate
            .push((log.epoch + 1, value));
        if should_prune(
            self.pruner.as_deref(),
            &self.progress,
            self.number,
            self.direction,
            &self.history,
        ) {
            ctx.stop_training();
        }
        Ok(())
    }
}
