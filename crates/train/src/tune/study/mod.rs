//! Hyper-parameter search (Optuna's design): a [`Study`] runs an objective over
//! [`Trial`]s, each drawing its parameters (`suggest_float`, `suggest_int`,
//! `suggest_categorical`) from a [`Sampler`] ([`Grid`], [`Random`], [`Tpe`]) while a
//! [`Pruner`] ([`MedianPruner`], [`SuccessiveHalving`], [`Hyperband`]) stops trials
//! that train worse than others.
//!
//! With a folder ([`Study::storage`]) the study's state is on disk, replaced
//! atomically after every change: a study that crashed resumes where it stopped
//! (finished trials are kept, a trial cut short is run again with its parameters),
//! and several processes can run trials of one study at once, taking turns at the
//! folder's lock ([`Workers`] starts them). The folder also holds `trials.csv`, the
//! table of the trials; [`Study::plot_objective`] and [`Study::plot_importance`]
//! draw them.

mod pruners;
mod report;
mod samplers;
mod storage;
mod tpe;
mod trial;
mod workers;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use pruners::{Hyperband, MedianPruner, Pruner, SuccessiveHalving};
pub use samplers::{Grid, Random, SampleContext, Sampler};
pub use tpe::Tpe;
pub use trial::{Distribution, Param, PruningCallback, Scale, Trial};
pub use workers::{WORKER_VAR, Workers, worker_index};

use storage::{Definition, Storage, alive};
use trial::Progress;

use crate::{Error, Result};

/// Whether the objective should go down or up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Smaller is better (a loss).
    Minimize,
    /// Larger is better (an accuracy).
    Maximize,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Self::Minimize => "minimize",
            Self::Maximize => "maximize",
        }
    }

    /// Whether `a` is better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Self::Minimize => a < b,
            Self::Maximize => a > b,
        }
    }
}

/// Where a trial stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrialState {
    /// Its objective runs.
    Running,
    /// It returned a value.
    Complete,
    /// The pruner stopped it.
    Pruned,
    /// It returned an error, a NaN, or panicked: the record holds the message.
    Failed,
    /// Its process ended while it ran; a later trial runs its parameters again.
    Interrupted,
}

/// One trial as the study records it.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialRecord {
    /// Its number, from 0.
    pub number: usize,
    /// Where it stands.
    pub state: TrialState,
    /// The parameters it drew, in order.
    pub params: Vec<Param>,
    /// The objective's value (a pruned trial's last reported value).
    pub value: Option<f64>,
    /// What it reported: (step, value).
    pub intermediate: Vec<(usize, f64)>,
    /// Why it failed.
    pub error: Option<String>,
    /// How long it ran.
    pub seconds: f64,
    /// The process that runs it, while it runs.
    pub owner: Option<u32>,
    /// The interrupted trial whose parameters it runs again.
    pub retry_of: Option<usize>,
}

impl TrialRecord {
    pub(crate) fn new(number: usize) -> Self {
        Self {
            number,
            state: TrialState::Running,
            params: Vec::new(),
            value: None,
            intermediate: Vec::new(),
            error: None,
            seconds: 0.0,
            owner: Some(std::process::id()),
            retry_of: None,
        }
    }

    /// Whether it has finished (complete, pruned or failed).
    pub fn finished(&self) -> bool {
        matches!(
            self.state,
            TrialState::Complete | TrialState::Pruned | TrialState::Failed
        )
    }

    /// The value of parameter `name`, as the user reads it.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.distribution.display(p.value))
    }
}

/// A hyper-parameter search: its direction, sampler, pruner, and trials.
///
/// ```
/// use kiln_train::tune::study::{Direction, Scale, Study, Tpe};
///
/// let mut study = Study::new("quadratic", Direction::Minimize).sampler(Tpe::new()).seed(0);
/// study.optimize(30, |trial| {
///     let x = trial.suggest_float("x", -10.0, 10.0, Scale::Linear)?;
///     let layers = trial.suggest_int("layers", 1, 4, Scale::Linear)?;
///     Ok((x - 2.0).powi(2) + layers as f64)
/// })?;
/// let best = study.best_trial().expect("a complete trial");
/// // The optimum is 1 (x = 2, one layer).
/// assert!(best.value.unwrap_or(f64::MAX) < 1.5, "{best:?}");
/// # Ok::<(), kiln_train::Error>(())
/// ```
pub struct Study {
    name: String,
    direction: Direction,
    sampler: Arc<dyn Sampler>,
    pruner: Option<Arc<dyn Pruner>>,
    seed: u64,
    storage: Option<Storage>,
    trials: Vec<TrialRecord>,
}

impl std::fmt::Debug for Study {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Study")
            .field("definition", &self.definition().summary())
            .field("trials", &self.trials.len())
            .finish()
    }
}

impl Study {
    /// A study in memory named `name`, with random sampling, no pruning, seed 0.
    pub fn new(name: impl Into<String>, direction: Direction) -> Self {
        Self {
            name: name.into(),
            direction,
            sampler: Arc::new(Random),
            pruner: None,
            seed: 0,
            storage: None,
            trials: Vec::new(),
        }
    }

    /// The same drawing with `sampler`.
    #[must_use]
    pub fn sampler(mut self, sampler: impl Sampler + 'static) -> Self {
        self.sampler = Arc::new(sampler);
        self
    }

    /// The same pruning with `pruner`.
    #[must_use]
    pub fn pruner(mut self, pruner: impl Pruner + 'static) -> Self {
        self.pruner = Some(Arc::new(pruner));
        self
    }

    /// The same with another seed of the draws.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Keeps the study's state in folder `dir` (created if need be), loading the
    /// trials already there. Set the sampler, pruner and seed first: a folder written
    /// by a study of another name, direction, sampler, pruner or seed is refused.
    pub fn storage(mut self, dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let storage = Storage { dir };
        {
            let _lock = storage.lock(&self.name)?;
            let ours = self.definition();
            match storage.load(&self.name)? {
                Some((theirs, trials)) if theirs != ours => {
                    drop(trials);
                    return Err(self.error(format!(
                        "{} holds study {}, not {}: give this study another folder, or the \
                         same definition to resume it",
                        storage.dir.display(),
                        theirs.summary(),
                        ours.summary()
                    )));
                }
                Some((_, trials)) => self.trials = trials,
                None => storage.save(&ours, &[])?,
            }
        }
        self.storage = Some(storage);
        Ok(self)
    }

    fn definition(&self) -> Definition {
        Definition {
            name: self.name.clone(),
            direction: self.direction.name().into(),
            sampler: self.sampler.describe(),
            pruner: self.pruner.as_ref().map_or("none".into(), |p| p.describe()),
            seed: self.seed,
        }
    }

    fn error(&self, detail: String) -> Error {
        Error::Study {
            study: self.name.clone(),
            detail,
        }
    }

    /// The study's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its direction.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Every trial, by number (as last read from the folder, with one).
    pub fn trials(&self) -> &[TrialRecord] {
        &self.trials
    }

    /// Reads the trials from the folder again: those other processes ran since this
    /// one last looked ([`Workers::wait`], then this). Nothing to do without a folder.
    pub fn reload(&mut self) -> Result<()> {
        self.update(|_| Ok(()))
    }

    /// The complete trial with the best value.
    pub fn best_trial(&self) -> Option<&TrialRecord> {
        self.trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .filter(|t| t.value.is_some_and(f64::is_finite))
            .fold(None, |best: Option<&TrialRecord>, t| {
                match (best, t.value) {
                    (Some(b), Some(v))
                        if !self.direction.better(v, b.value.unwrap_or(f64::NAN)) =>
                    {
                        Some(b)
                    }
                    _ => Some(t),
                }
            })
    }

    /// Runs `objective` until the study holds `n_trials` finished trials (complete,
    /// pruned or failed, by any process; a grid may end it sooner). An objective that
    /// returns an error or NaN, or panics, fails its trial and the study goes on; a
    /// trial the pruner stopped is recorded as pruned whatever it returns. Only an
    /// error of the study's own (its folder) ends the call.
    pub fn optimize(
        &mut self,
        n_trials: usize,
        mut objective: impl FnMut(&mut Trial) -> Result<f64>,
    ) -> Result<()> {
        while let Some(mut trial) = self.start_trial(n_trials)? {
            let started = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| objective(&mut trial)));
            let seconds = started.elapsed().as_secs_f64();
            let progress =
                std::mem::take(&mut *trial.progress.lock().unwrap_or_else(|e| e.into_inner()));
            let mut record = TrialRecord {
                params: trial.params,
                intermediate: progress.intermediate,
                seconds,
                owner: None,
                ..TrialRecord::new(trial.number)
            };
            let last = record.intermediate.last().map(|r| r.1);
            match outcome {
                _ if progress.pruned => {
                    record.state = TrialState::Pruned;
                    record.value = last;
                }
                Ok(Ok(value)) if value.is_nan() => {
                    record.state = TrialState::Failed;
                    record.error = Some("the objective returned NaN".into());
                }
                Ok(Ok(value)) => {
                    record.state = TrialState::Complete;
                    record.value = Some(value);
                }
                Ok(Err(e)) => {
                    record.state = TrialState::Failed;
                    record.error = Some(e.to_string());
                }
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    record.state = TrialState::Failed;
                    record.error = Some(format!("the objective panicked: {message}"));
                }
            }
            self.finish_trial(record)?;
        }
        Ok(())
    }

    /// Reads the folder's trials (marking as interrupted those whose process ended),
    /// under its lock, and runs `f` on them; what `f` leaves is written back.
    fn update<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let Some(storage) = self.storage.clone() else {
            return f(self);
        };
        let _lock = storage.lock(&self.name)?;
        if let Some((_, trials)) = storage.load(&self.name)? {
            self.trials = trials;
        }
        for t in &mut self.trials {
            if t.state == TrialState::Running && t.owner.is_some_and(|pid| !alive(pid)) {
                t.state = TrialState::Interrupted;
                t.error = Some(format!(
                    "its process ({}) ended while it ran",
                    t.owner.unwrap_or(0)
                ));
                t.owner = None;
            }
        }
        let out = f(self)?;
        storage.save(&self.definition(), &self.trials)?;
        storage.write("trials.csv", &self.csv())?;
        Ok(out)
    }

    /// Registers a new running trial, or `None` when the study has enough.
    fn start_trial(&mut self, n_trials: usize) -> Result<Option<Trial>> {
        self.update(|study| {
            let taken = study
                .trials
                .iter()
                .filter(|t| t.finished() || t.state == TrialState::Running)
                .count();
            let number = study.trials.len();
            // Trials that re-run an interrupted one draw nothing new: the others count
            // the draws (a grid's combinations).
            let index = number - study.retried_count();
            if taken >= n_trials || study.sampler.exhausted(index) {
                return Ok(None);
            }
            let retry = study
                .trials
                .iter()
                .find(|t| {
                    t.state == TrialState::Interrupted
                        && !study.trials.iter().any(|r| r.retry_of == Some(t.number))
                })
                .map(|t| (t.number, t.params.clone()));
            let mut record = TrialRecord::new(number);
            record.retry_of = retry.as_ref().map(|r| r.0);
            let history = Arc::new(study.trials.clone());
            study.trials.push(record);
            Ok(Some(Trial {
                number,
                index,
                study: study.name.clone(),
                direction: study.direction,
                seed: study.seed,
                params: Vec::new(),
                fixed: retry.map(|r| r.1).unwrap_or_default(),
                history,
                sampler: Arc::clone(&study.sampler),
                pruner: study.pruner.clone(),
                progress: Arc::new(Mutex::new(Progress::default())),
                storage: study.storage.clone().map(|s| (s, study.definition())),
            }))
        })
    }

    /// Trials that re-ran an interrupted one (a grid does not count them twice).
    fn retried_count(&self) -> usize {
        self.trials.iter().filter(|t| t.retry_of.is_some()).count()
    }

    /// Records a finished trial.
    fn finish_trial(&mut self, mut record: TrialRecord) -> Result<()> {
        self.update(|study| {
            match study.trials.iter_mut().find(|t| t.number == record.number) {
                Some(t) => {
                    record.retry_of = t.retry_of;
                    *t = record;
                }
                None => study.trials.push(record),
            }
            Ok(())
        })
    }
}
