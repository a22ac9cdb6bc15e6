//! Pruners: whether a trial whose training goes worse than others' should stop early.
//! A step is what the trial reports after (an epoch counted from 1 with
//! [`Trial::pruning`](super::Trial::pruning)).

use super::samplers::loss_of;
use super::{Direction, TrialRecord, TrialState};

/// Decides, from a trial's intermediate values and the study's finished trials,
/// whether to stop the trial.
pub trait Pruner: Send + Sync + std::fmt::Debug {
    /// Whether trial `number`, having reported `intermediate` ((step, value), in
    /// order), should stop, given the trials of `history`.
    fn prune(
        &self,
        number: usize,
        intermediate: &[(usize, f64)],
        history: &[TrialRecord],
        direction: Direction,
    ) -> bool;

    /// The pruner and its settings, as the study folder records them.
    fn describe(&self) -> String;
}

/// Optuna's `MedianPruner`: stops a trial whose best value so far is worse than the
/// median of the complete trials' values at the same step. Defaults: no pruning
/// before 5 trials have completed, nor before the first step, nor against fewer than
/// one value.
#[derive(Clone, Copy, Debug)]
pub struct MedianPruner {
    startup_trials: usize,
    warmup_steps: usize,
}

impl Default for MedianPruner {
    fn default() -> Self {
        Self {
            startup_trials: 5,
            warmup_steps: 0,
        }
    }
}

impl MedianPruner {
    /// Optuna's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same, pruning only once `n` trials have completed.
    #[must_use]
    pub fn startup_trials(mut self, n: usize) -> Self {
        self.startup_trials = n;
        self
    }

    /// The same, pruning only after step `n`.
    #[must_use]
    pub fn warmup_steps(mut self, n: usize) -> Self {
        self.warmup_steps = n;
        self
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    })
}

/// `trial`'s value at `step`, if it reported one.
fn value_at(trial: &TrialRecord, step: usize) -> Option<f64> {
    trial
        .intermediate
        .iter()
        .rev()
        .find(|(s, _)| *s == step)
        .map(|(_, v)| *v)
}

impl Pruner for MedianPruner {
    fn prune(
        &self,
        _number: usize,
        intermediate: &[(usize, f64)],
        history: &[TrialRecord],
        direction: Direction,
    ) -> bool {
        let Some(&(step, _)) = intermediate.last() else {
            return false;
        };
        let complete: Vec<&TrialRecord> = history
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .collect();
        if complete.len() < self.startup_trials || step <= self.warmup_steps {
            return false;
        }
        // The trial's best so far, in the minimising sense (NaN is pruned, as Optuna does).
        let best = intermediate
            .iter()
            .map(|(_, v)| loss_of(direction, *v))
            .fold(f64::INFINITY, f64::min);
        if intermediate.iter().any(|(_, v)| v.is_nan()) {
            return true;
        }
        let mut others: Vec<f64> = complete
            .iter()
            .filter_map(|t| value_at(t, step))
            .filter(|v| !v.is_nan())
            .map(|v| loss_of(direction, v))
            .collect();
        median(&mut others).is_some_and(|m| best > m)
    }

    fn describe(&self) -> String {
        format!(
            "median(startup {}, warmup {})",
            self.startup_trials, self.warmup_steps
        )
    }
}

/// Successive halving (asynchronous, as Optuna's `SuccessiveHalvingPruner`): rungs
/// at steps `min_resource * factor^k`; a trial reaching a rung goes on only if its
/// value there is among the best `1 / factor` of all the values reported at that
/// rung so far (at least the best one). Hyperband runs several of these, each
/// starting its rungs later.
#[derive(Clone, Copy, Debug)]
pub struct SuccessiveHalving {
    min_resource: usize,
    factor: usize,
    /// Rungs start at `min_resource * factor^early_stopping_rate`.
    early_stopping_rate: u32,
}

impl SuccessiveHalving {
    /// Rungs at `min_resource`, `min_resource * factor`, ... steps (Optuna's reduction
    /// factor is 4; at least 2).
    pub fn new(min_resource: usize, factor: usize) -> Self {
        Self {
            min_resource: min_resource.max(1),
            factor: factor.max(2),
            early_stopping_rate: 0,
        }
    }

    /// The step of rung `k`.
    fn rung_step(&self, k: u32) -> usize {
        self.min_resource
            .saturating_mul(self.factor.saturating_pow(k + self.early_stopping_rate))
    }

    /// Whether a trial at `step` with `value` survives against the values `others`
    /// reached there; `None` when `step` is no rung.
    fn verdict(
        &self,
        step: usize,
        value: f64,
        others: &[f64],
        direction: Direction,
    ) -> Option<bool> {
        let is_rung = (0..64)
            .map(|k| self.rung_step(k))
            .take_while(|s| *s <= step)
            .any(|s| s == step);
        if !is_rung {
            return None;
        }
        if value.is_nan() {
            return Some(false);
        }
        let mut all: Vec<f64> = others
            .iter()
            .copied()
            .filter(|v| !v.is_nan())
            .chain(std::iter::once(value))
            .map(|v| loss_of(direction, v))
            .collect();
        all.sort_by(f64::total_cmp);
        let promoted = (all.len() / self.factor).max(1);
        Some(loss_of(direction, value) <= all[promoted - 1])
    }

    fn prune_among<'a>(
        &self,
        number: usize,
        intermediate: &[(usize, f64)],
        trials: impl Iterator<Item = &'a TrialRecord>,
        direction: Direction,
    ) -> bool {
        let Some(&(step, value)) = intermediate.last() else {
            return false;
        };
        let others: Vec<f64> = trials
            .filter(|t| t.number != number)
            .filter_map(|t| value_at(t, step))
            .collect();
        self.verdict(step, value, &others, direction) == Some(false)
    }
}

impl Pruner for SuccessiveHalving {
    fn prune(
        &self,
        number: usize,
        intermediate: &[(usize, f64)],
        history: &[TrialRecord],
        direction: Direction,
    ) -> bool {
        self.prune_among(number, intermediate, history.iter(), direction)
    }

    fn describe(&self) -> String {
        format!(
            "successive_halving(min_resource {}, factor {}, rate {})",
            self.min_resource, self.factor, self.early_stopping_rate
        )
    }
}

/// Hyperband (Li et al., 2018) over successive halving: brackets whose rungs start
/// at `min_resource * factor^b` for `b = 0, 1, ...` up to `max_resource`, each trial
/// in one bracket (trial numbers dealt round the brackets) and compared only with
/// the trials of its bracket, so that some trials are judged early and others only
/// after longer training.
#[derive(Clone, Copy, Debug)]
pub struct Hyperband {
    min_resource: usize,
    max_resource: usize,
    factor: usize,
}

impl Hyperband {
    /// Brackets between `min_resource` and `max_resource` steps (the epochs of a
    /// trial), with reduction `factor` (Optuna's 3; at least 2).
    pub fn new(min_resource: usize, max_resource: usize, factor: usize) -> Self {
        Self {
            min_resource: min_resource.max(1),
            max_resource: max_resource.max(min_resource.max(1)),
            factor: factor.max(2),
        }
    }

    /// Brackets: `floor(log_factor(max / min)) + 1`.
    pub fn brackets(&self) -> usize {
        let mut n = 1;
        let mut r = self.min_resource;
        while r.saturating_mul(self.factor) <= self.max_resource {
            r *= self.factor;
            n += 1;
        }
        n
    }

    fn bracket(&self, number: usize) -> SuccessiveHalving {
        let b = number % self.brackets();
        SuccessiveHalving {
            early_stopping_rate: b as u32,
            ..SuccessiveHalving::new(self.min_resource, self.factor)
        }
    }
}

impl Pruner for Hyperband {
    fn prune(
        &self,
        number: usize,
        intermediate: &[(usize, f64)],
        history: &[TrialRecord],
        direction: Direction,
    ) -> bool {
        let n = self.brackets();
        let same = history.iter().filter(|t| t.number % n == number % n);
        self.bracket(number)
            .prune_among(number, intermediate, same, direction)
    }

    fn describe(&self) -> String {
        format!(
            "hyperband(min_resource {}, max_resource {}, factor {})",
            self.min_resource, self.max_resource, self.factor
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(number: usize, values: &[f64]) -> TrialRecord {
        TrialRecord {
            number,
            state: TrialState::Complete,
            value: values.last().copied(),
            intermediate: values
                .iter()
                .enumerate()
                .map(|(i, v)| (i + 1, *v))
                .collect(),
            ..TrialRecord::new(number)
        }
    }

    #[test]
    fn the_median_pruner_stops_a_trial_below_the_median() {
        let history: Vec<TrialRecord> = (0..5)
            .map(|i| finished(i, &[0.1 * i as f64, 0.2 * i as f64]))
            .collect();
        let pruner = MedianPruner::new();
        // Medians at steps 1 and 2 (maximising accuracy): 0.2 and 0.4.
        assert!(pruner.prune(9, &[(1, 0.1)], &history, Direction::Maximize));
        assert!(!pruner.prune(9, &[(1, 0.3)], &history, Direction::Maximize));
        // Its best so far counts: 0.5 at step 1 carries it past step 2's 0.3.
        assert!(!pruner.prune(9, &[(1, 0.5), (2, 0.3)], &history, Direction::Maximize));
        assert!(pruner.prune(9, &[(1, 0.5), (2, f64::NAN)], &history, Direction::Maximize));
        // Too few complete trials: no pruning.
        assert!(!pruner.prune(9, &[(1, 0.0)], &history[..4], Direction::Maximize));
    }

    #[test]
    fn successive_halving_keeps_the_best_quarter_at_each_rung() {
        let history: Vec<TrialRecord> = (0..8).map(|i| finished(i, &[i as f64])).collect();
        let pruner = SuccessiveHalving::new(1, 4);
        // 9 values at step 1 (8 and the trial's): the best 2 go on (minimising).
        assert!(!pruner.prune(9, &[(1, 0.5)], &history, Direction::Minimize));
        assert!(!pruner.prune(9, &[(1, 1.0)], &history, Direction::Minimize));
        assert!(pruner.prune(9, &[(1, 1.5)], &history, Direction::Minimize));
        // Step 2 is no rung (1, 4, 16, ...): nothing is decided there.
        assert!(!pruner.prune(9, &[(1, 0.0), (2, 99.0)], &history, Direction::Minimize));
    }

    #[test]
    fn hyperband_brackets_judge_at_their_own_rungs() {
        let pruner = Hyperband::new(1, 9, 3);
        assert_eq!(pruner.brackets(), 3);
        let history: Vec<TrialRecord> = (0..9)
            .map(|i| finished(i, &[i as f64, i as f64, i as f64]))
            .collect();
        // Trial 9 is in bracket 0 (rungs 1, 3, 9), trial 10 in bracket 1 (rungs 3, 9).
        assert!(pruner.prune(9, &[(1, 100.0)], &history, Direction::Minimize));
        assert!(!pruner.prune(10, &[(1, 100.0)], &history, Direction::Minimize));
        assert!(pruner.prune(
            10,
            &[(1, 0.0), (2, 0.0), (3, 100.0)],
            &history,
            Direction::Minimize
        ));
    }
}
