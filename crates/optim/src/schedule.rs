//! Learning-rate schedules: the rate as a function of the number of updates done so
//! far (`step` is 0 for the first update). The training loop decides whether a step is
//! a batch (Keras's schedules) or an epoch (PyTorch's usual `scheduler.step()`).
//!
//! Each schedule is a closed form; the tests hold them against
//! `torch.optim.lr_scheduler`, which computes the same rates recursively.

use std::f64::consts::PI;
use std::fmt::Debug;

/// A learning rate that depends on the step. Implement it for a schedule of your own.
pub trait Schedule: Debug + Send + Sync {
    /// The rate of update `step` (0 for the first).
    fn learning_rate(&self, step: u64) -> f64;
}

/// The same rate at every step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Constant(pub f64);

impl Schedule for Constant {
    fn learning_rate(&self, _step: u64) -> f64 {
        self.0
    }
}

/// `initial * gamma^(step / step_size)` with integer division: the rate drops by
/// `gamma` every `step_size` steps (PyTorch's `StepLR`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepDecay {
    /// The starting rate.
    pub initial: f64,
    /// Steps between drops.
    pub step_size: u64,
    /// The factor of each drop.
    pub gamma: f64,
}

impl Schedule for StepDecay {
    fn learning_rate(&self, step: u64) -> f64 {
        self.initial * self.gamma.powf((step / self.step_size.max(1)) as f64)
    }
}

/// `initial * rate^(step / decay_steps)` (Keras's `ExponentialDecay`; with
/// `decay_steps = 1`, PyTorch's `ExponentialLR` with `gamma = rate`). With
/// `staircase`, the exponent is rounded down.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialDecay {
    /// The starting rate.
    pub initial: f64,
    /// The factor over `decay_steps` steps.
    pub decay_rate: f64,
    /// Steps over which the rate is multiplied by `decay_rate`.
    pub decay_steps: u64,
    /// Whether the rate changes in steps.
    pub staircase: bool,
}

impl Schedule for ExponentialDecay {
    fn learning_rate(&self, step: u64) -> f64 {
        let steps = self.decay_steps.max(1);
        let exponent = if self.staircase {
            (step / steps) as f64
        } else {
            step as f64 / steps as f64
        };
        self.initial * self.decay_rate.powf(exponent)
    }
}

/// From `initial` to `end` over `decay_steps` steps along
/// `(1 - step / decay_steps)^power`, then `end` (Keras's `PolynomialDecay`; PyTorch's
/// `PolynomialLR` when `end` is 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PolynomialDecay {
    /// The starting rate.
    pub initial: f64,
    /// The final rate.
    pub end: f64,
    /// Steps of the decay.
    pub decay_steps: u64,
    /// The polynomial's power (1: linear).
    pub power: f64,
}

impl Schedule for PolynomialDecay {
    fn learning_rate(&self, step: u64) -> f64 {
        let t = step.min(self.decay_steps) as f64 / self.decay_steps.max(1) as f64;
        (self.initial - self.end) * (1.0 - t).powf(self.power) + self.end
    }
}

/// A linear warm-up from `warmup_start` to `peak` over `warmup_steps`, then a cosine
/// decay from `peak` to `end` over `decay_steps`, then `end` (Keras's `CosineDecay`
/// with warm-up; PyTorch's `LinearLR` followed by `CosineAnnealingLR`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineDecay {
    /// The rate of the first step.
    pub warmup_start: f64,
    /// The rate at the end of the warm-up.
    pub peak: f64,
    /// Steps of the warm-up (0: none, start at `peak`).
    pub warmup_steps: u64,
    /// Steps of the decay.
    pub decay_steps: u64,
    /// The final rate.
    pub end: f64,
}

impl CosineDecay {
    /// A cosine decay from `peak` to zero over `decay_steps`, without warm-up.
    pub fn new(peak: f64, decay_steps: u64) -> Self {
        Self {
            warmup_start: peak,
            peak,
            warmup_steps: 0,
            decay_steps,
            end: 0.0,
        }
    }

    /// nanoGPT's schedule (`get_lr` in its `train.py`): update `it` (0 for the first)
    /// warms up at `learning_rate * (it + 1) / (warmup_iters + 1)`, reaches
    /// `learning_rate` at `warmup_iters`, decays along a cosine to `min_lr` at
    /// `lr_decay_iters` and stays there. The warm-up is the linear one from
    /// `learning_rate / (warmup_iters + 1)`, so the rate of every update is nanoGPT's.
    ///
    /// ```
    /// use kiln_optim::{CosineDecay, Schedule};
    ///
    /// let schedule = CosineDecay::nanogpt(6e-4, 2000, 600_000, 6e-5);
    /// assert!((schedule.learning_rate(0) - 6e-4 / 2001.0).abs() < 1e-18);
    /// assert_eq!(schedule.learning_rate(2000), 6e-4);
    /// assert_eq!(schedule.learning_rate(700_000), 6e-5);
    /// ```
    pub fn nanogpt(
        learning_rate: f64,
        warmup_iters: u64,
        lr_decay_iters: u64,
        min_lr: f64,
    ) -> Self {
        Self {
            warmup_start: learning_rate / (warmup_iters + 1) as f64,
            peak: learning_rate,
            warmup_steps: warmup_iters,
            decay_steps: lr_decay_iters.saturating_sub(warmup_iters),
            end: min_lr,
        }
    }
}

impl Schedule for CosineDecay {
    fn learning_rate(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            let t = step as f64 / self.warmup_steps as f64;
            return self.warmup_start + (self.peak - self.warmup_start) * t;
        }
        let t = (step - self.warmup_steps).min(self.decay_steps) as f64;
        let cosine = (1.0 + (PI * t / self.decay_steps.max(1) as f64).cos()) / 2.0;
        self.end + (self.peak - self.end) * cosine
    }
}

/// How [`OneCycle`] moves between its rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anneal {
    /// Half a cosine period.
    Cos,
    /// A straight line.
    Linear,
}

/// Smith's one-cycle policy (PyTorch's `OneCycleLR`, two phases): from
/// `max_lr / div_factor` up to `max_lr` over the first `pct_start` of `total_steps`,
/// then down to `max_lr / (div_factor * final_div_factor)` at the last step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OneCycle {
    /// The highest rate.
    pub max_lr: f64,
    /// Steps of the whole cycle.
    pub total_steps: u64,
    /// The fraction of the cycle spent rising (0.3).
    pub pct_start: f64,
    /// `max_lr / div_factor` is the starting rate (25).
    pub div_factor: f64,
    /// The final rate is the starting rate divided by this (1e4).
    pub final_div_factor: f64,
    /// The curve's shape.
    pub anneal: Anneal,
}

impl OneCycle {
    /// PyTorch's defaults around `max_lr` and `total_steps`.
    pub fn new(max_lr: f64, total_steps: u64) -> Self {
        Self {
            max_lr,
            total_steps,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            anneal: Anneal::Cos,
        }
    }

    fn interpolate(&self, start: f64, end: f64, pct: f64) -> f64 {
        match self.anneal {
            Anneal::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
            Anneal::Linear => (end - start) * pct + start,
        }
    }
}

impl Schedule for OneCycle {
    fn learning_rate(&self, step: u64) -> f64 {
        let initial = self.max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let rise_end = self.pct_start * self.total_steps as f64 - 1.0;
        let fall_end = self.total_steps as f64 - 1.0;
        let step = (step as f64).min(fall_end);
        if step <= rise_end {
            self.interpolate(initial, self.max_lr, step / rise_end)
        } else {
            self.interpolate(self.max_lr, min, (step - rise_end) / (fall_end - rise_end))
        }
    }
}

/// Whether a smaller or a larger monitored value is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Monitor {
    /// Smaller is better (a loss).
    Min,
    /// Larger is better (an accuracy).
    Max,
}

/// What counts as an improvement of the monitored value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threshold {
    /// Better than the best by a fraction `threshold` of it (PyTorch's default).
    Relative,
    /// Better than the best by `threshold` (Keras's `min_delta`).
    Absolute,
}

/// Lowers the learning rate when a monitored value stops improving (PyTorch's
/// `ReduceLROnPlateau`; Keras's callback of the same name).
///
/// After more than `patience` observations without improvement the rate is
/// multiplied by `factor` (never below `min_lr`), then `cooldown` observations pass
/// before bad ones count again. As in PyTorch, the rate drops on the
/// `patience + 1`-th bad observation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReduceLrOnPlateau {
    /// Whether smaller or larger values are better.
    pub monitor: Monitor,
    /// The factor of each reduction (0.1).
    pub factor: f64,
    /// Bad observations tolerated (10).
    pub patience: u32,
    /// The smallest improvement that counts (1e-4).
    pub threshold: f64,
    /// Relative or absolute improvement.
    pub threshold_mode: Threshold,
    /// Observations to wait after a reduction (0).
    pub cooldown: u32,
    /// The rate never goes below this (0).
    pub min_lr: f64,
    /// Reductions smaller than this are skipped (1e-8).
    pub eps: f64,
    best: f64,
    bad: u32,
    cooldown_left: u32,
}

impl Default for ReduceLrOnPlateau {
    fn default() -> Self {
        Self::new(Monitor::Min)
    }
}

impl ReduceLrOnPlateau {
    /// PyTorch's defaults for a value that should go down (or up).
    pub fn new(monitor: Monitor) -> Self {
        Self {
            monitor,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: Threshold::Relative,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
            best: match monitor {
                Monitor::Min => f64::INFINITY,
                Monitor::Max => f64::NEG_INFINITY,
            },
            bad: 0,
            cooldown_left: 0,
        }
    }

    /// The best value seen so far.
    pub fn best(&self) -> f64 {
        self.best
    }

    fn is_better(&self, value: f64) -> bool {
        let best = self.best;
        match (self.monitor, self.threshold_mode) {
            (Monitor::Min, Threshold::Relative) => value < best * (1.0 - self.threshold),
            (Monitor::Min, Threshold::Absolute) => value < best - self.threshold,
            (Monitor::Max, Threshold::Relative) => value > best * (1.0 + self.threshold),
            (Monitor::Max, Threshold::Absolute) => value > best + self.threshold,
        }
    }

    /// Records `value` and returns the learning rate to use from now on, given the
    /// current rate `lr`.
    pub fn observe(&mut self, value: f64, lr: f64) -> f64 {
        if self.is_better(value) {
            self.best = value;
            self.bad = 0;
        } else {
            self.bad += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad = 0;
        }
        if self.bad > self.patience {
            self.cooldown_left = self.cooldown;
            self.bad = 0;
            let reduced = (lr * self.factor).max(self.min_lr);
            if lr - reduced > self.eps {
                return reduced;
            }
        }
        lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_style_options_hold_at_their_edges() {
        let stairs = ExponentialDecay {
            initial: 1.0,
            decay_rate: 0.5,
            decay_steps: 10,
            staircase: true,
        };
        assert_eq!(stairs.learning_rate(9), 1.0);
        assert_eq!(stairs.learning_rate(10), 0.5);
        let smooth = ExponentialDecay {
            staircase: false,
            ..stairs
        };
        assert!((smooth.learning_rate(5) - 0.5f64.sqrt()).abs() < 1e-15);
        let poly = PolynomialDecay {
            initial: 1.0,
            end: 0.1,
            decay_steps: 4,
            power: 1.0,
        };
        assert!((poly.learning_rate(2) - 0.55).abs() < 1e-15);
        assert_eq!(poly.learning_rate(100), 0.1, "stays at the end");
        let cosine = CosineDecay {
            end: 0.01,
            ..CosineDecay::new(1.0, 10)
        };
        assert_eq!(cosine.learning_rate(0), 1.0);
        assert!((cosine.learning_rate(5) - 0.505).abs() < 1e-12);
        assert_eq!(cosine.learning_rate(10), 0.01);
        assert_eq!(
            cosine.learning_rate(1000),
            0.01,
            "no restart after the decay"
        );
        let linear = OneCycle {
            anneal: Anneal::Linear,
            ..OneCycle::new(1.0, 11)
        };
        assert!((linear.learning_rate(0) - 0.04).abs() < 1e-15);
        assert!(linear.learning_rate(1000) < 1e-5, "stays at the minimum");
    }

    #[test]
    fn the_plateau_reducer_watches_maxima_and_absolute_thresholds() {
        let mut r = ReduceLrOnPlateau::new(Monitor::Max);
        r.patience = 1;
        r.threshold = 0.05;
        r.threshold_mode = Threshold::Absolute;
        r.factor = 0.5;
        r.min_lr = 0.3;
        let mut lr = 1.0;
        // 0.56 beats 0.5 by more than 0.05, 0.6 does not beat 0.56, 0.7 does; then the
        // rate halves on every second bad value, down to `min_lr`.
        let steps = [
            (0.5, 1.0),
            (0.54, 1.0),
            (0.56, 1.0),
            (0.6, 1.0),
            (0.7, 1.0),
            (0.7, 1.0),
            (0.7, 0.5),
            (0.7, 0.5),
            (0.7, 0.3),
            (0.7, 0.3),
            (0.7, 0.3),
        ];
        for (value, want) in steps {
            lr = r.observe(value, lr);
            assert_eq!(lr, want, "after {value}");
        }
        assert_eq!(r.best(), 0.7);
    }
}
