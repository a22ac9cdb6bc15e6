//! The learning-rate range test (Smith, 2015; fastai's `lr_find`): train for a few
//! steps while the learning rate grows exponentially, record the smoothed loss, and
//! read a good rate off the curve. The model and the optimizer are put back as they
//! were.

use std::sync::Arc;

use kiln_data::{Augment, Dataset, Pipeline, Subset};
use kiln_kernels::Backend;
use kiln_kernels::rng::Rng;
use kiln_nn::Model;

use crate::checkpoint::Weights;
use crate::progress::Verbosity;
use crate::trainer::{FitOptions, SharedData, Trainer};
use crate::{Error, Result};

/// The settings of [`Trainer::lr_find`]; [`LrFindOptions::new`] gives fastai's
/// defaults.
#[derive(Clone, Debug)]
pub struct LrFindOptions {
    /// The first rate of the sweep.
    pub start_lr: f64,
    /// The last rate the sweep may reach.
    pub end_lr: f64,
    /// Steps of the sweep (one batch each), unless the loss diverges first.
    pub steps: usize,
    /// Samples a batch.
    pub batch_size: usize,
    /// The factor of the loss's moving average (fastai's `beta`).
    pub smoothing: f64,
    /// Stop once the smoothed loss exceeds this many times its lowest value.
    pub diverge: f64,
    /// Preprocessing of every sample.
    pub pipeline: Pipeline,
    /// Augmentation of the training images.
    pub augment: Augment,
    /// The seed of the order in which samples are drawn.
    pub seed: u64,
}

impl LrFindOptions {
    /// fastai's sweep: from 1e-7 to 10 over 100 steps, the loss smoothed with a factor
    /// of 0.98, stopped when it exceeds 4 times its best.
    pub fn new(batch_size: usize) -> Self {
        Self {
            start_lr: 1e-7,
            end_lr: 10.0,
            steps: 100,
            batch_size,
            smoothing: 0.98,
            diverge: 4.0,
            pipeline: Pipeline::new(),
            augment: Augment::none(),
            seed: 0,
        }
    }

    /// The same from `start` to `end`.
    #[must_use]
    pub fn range(mut self, start: f64, end: f64) -> Self {
        self.start_lr = start;
        self.end_lr = end;
        self
    }

    /// The same with `steps` steps.
    #[must_use]
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }

    /// The same with a preprocessing pipeline.
    #[must_use]
    pub fn pipeline(mut self, pipeline: Pipeline) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// The same with augmentation.
    #[must_use]
    pub fn augment(mut self, augment: Augment) -> Self {
        self.augment = augment;
        self
    }

    /// The same with another seed.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    fn check(&self) -> Result<()> {
        let bad = |detail: String| Err(Error::Config(format!("lr_find: {detail}")));
        if !(self.start_lr > 0.0 && self.end_lr > self.start_lr && self.end_lr.is_finite()) {
            return bad(format!(
                "the sweep must run from a positive rate up to a larger finite one, not from \
                 {} to {}",
                self.start_lr, self.end_lr
            ));
        }
        if self.steps < 2 {
            return bad(format!(
                "the sweep needs 2 steps or more, not {}",
                self.steps
            ));
        }
        if !(0.0..1.0).contains(&self.smoothing) {
            return bad(format!(
                "the smoothing factor must lie in [0, 1), not {}",
                self.smoothing
            ));
        }
        if self.diverge.is_nan() || self.diverge <= 1.0 {
            return bad(format!(
                "the divergence threshold must exceed 1, not {}",
                self.diverge
            ));
        }
        Ok(())
    }
}

/// Which suggestion of [`LrFind`] to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suggestion {
    /// The middle of the longest stretch over which the loss keeps falling (fastai's
    /// `valley`, its default): the default here too, since it reads the whole curve's
    /// shape, where the other two each depend on a single point that noise moves.
    Valley,
    /// A tenth of the rate at the lowest loss (fastai's `minimum`).
    Minimum,
    /// The rate where the loss falls fastest against the log of the rate (fastai's
    /// `steep`).
    Steep,
}

/// The outcome of [`Trainer::lr_find`]: every step's rate and loss, and the rates the
/// curve suggests.
#[derive(Clone, Debug, PartialEq)]
pub struct LrFind {
    /// The rate of each step.
    pub learning_rates: Vec<f64>,
    /// The loss of each step's batch, before its update.
    pub raw_losses: Vec<f64>,
    /// The debiased moving average of the losses (what the suggestions read).
    pub losses: Vec<f64>,
    /// Whether the sweep stopped because the loss diverged (else it ran every step).
    pub diverged: bool,
    /// The steps the sweep planned ([`LrFindOptions::steps`]): the suggestions skip
    /// the first tenth of them, as fastai's do.
    pub steps: usize,
}

impl LrFind {
    /// The curve of `raw_losses` recorded at `learning_rates` by a sweep of `options`:
    /// smoothed by `options.smoothing` (a debiased moving average, fastai's
    /// `AvgSmoothLoss`) and cut where it diverges (`options.diverge` times its best) or
    /// turns non-finite.
    pub fn from_raw(learning_rates: &[f64], raw_losses: &[f64], options: &LrFindOptions) -> Self {
        let mut curve = Self {
            learning_rates: Vec::new(),
            raw_losses: Vec::new(),
            losses: Vec::new(),
            diverged: false,
            steps: options.steps,
        };
        let mut sweep = Smoother::new(options.smoothing, options.diverge);
        for (&lr, &loss) in learning_rates.iter().zip(raw_losses) {
            let stop = sweep.push(loss);
            curve.learning_rates.push(lr);
            curve.raw_losses.push(loss);
            curve.losses.push(sweep.value);
            if stop {
                curve.diverged = true;
                break;
            }
        }
        curve
    }

    /// The part of the curve that the suggestions read, as fastai trims it: the first
    /// tenth of the planned steps and the last 5 recorded points dropped (the warm-up
    /// and the blow-up), and nothing from the first non-finite loss on.
    fn trimmed(&self) -> (&[f64], &[f64]) {
        let start = self.steps / 10;
        let end = self.losses.len().saturating_sub(5);
        let end = self.losses[..end]
            .iter()
            .position(|l| !l.is_finite())
            .unwrap_or(end);
        if start >= end {
            return (&[], &[]);
        }
        (&self.learning_rates[start..end], &self.losses[start..end])
    }

    /// The suggested rate by `rule`; `None` when too little of the curve is left to
    /// read (fewer than about 15 steps recorded).
    pub fn suggestion_for(&self, rule: Suggestion) -> Option<f64> {
        let (lrs, losses) = self.trimmed();
        match rule {
            Suggestion::Valley => valley(losses).map(|i| lrs[i]),
            Suggestion::Minimum => minimum(losses).map(|i| lrs[i] / 10.0),
            Suggestion::Steep => steep(lrs, losses).map(|i| lrs[i]),
        }
    }

    /// The default suggestion, [`Suggestion::Valley`]; see [`LrFind::suggestion_for`].
    pub fn suggestion(&self) -> Option<f64> {
        self.suggestion_for(Suggestion::Valley)
    }
}

#[cfg(feature = "plots")]
impl LrFind {
    /// Draws the smoothed loss against the rate (a log axis), the raw losses as dots
    /// and the three suggestions as marks, as a PNG at `path`.
    pub fn plot(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        use super::plot::{Series, XyChart};
        let path = path.as_ref();
        if self.losses.is_empty() {
            return Err(super::plot::empty(path, "sweep"));
        }
        let points = |ys: &[f64]| {
            self.learning_rates
                .iter()
                .copied()
                .zip(ys.iter().copied())
                .collect()
        };
        let mut marks = Vec::new();
        for (rule, name) in [
            (Suggestion::Valley, "valley"),
            (Suggestion::Minimum, "minimum / 10"),
            (Suggestion::Steep, "steep"),
        ] {
            if let Some(lr) = self.suggestion_for(rule) {
                marks.push((format!("{name}: {lr:.2e}"), lr, self.smoothed_at(lr)));
            }
        }
        XyChart {
            title: "learning-rate range test",
            x_desc: "learning rate",
            y_desc: "loss",
            log_x: true,
            series: vec![
                Series {
                    label: "loss (smoothed)".into(),
                    points: points(&self.losses),
                    line: true,
                },
                Series {
                    label: "loss of the batch (outliers left out)".into(),
                    points: self.raw_in_view(),
                    line: false,
                },
            ],
            marks,
        }
        .write(path)
    }

    /// The raw losses within the smoothed curve's span widened by half of it either
    /// side: a few batches' spikes would otherwise squash the curve the suggestions
    /// read.
    fn raw_in_view(&self) -> Vec<(f64, f64)> {
        let (lo, hi) = self
            .losses
            .iter()
            .filter(|l| l.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &l| {
                (lo.min(l), hi.max(l))
            });
        let pad = 0.5 * (hi - lo).max(0.05 * hi.abs());
        self.learning_rates
            .iter()
            .copied()
            .zip(self.raw_losses.iter().copied())
            .filter(|(_, l)| (lo - pad..=hi + pad).contains(l))
            .collect()
    }

    /// The smoothed loss at the recorded rate nearest `lr`.
    fn smoothed_at(&self, lr: f64) -> f64 {
        let nearest = self
            .learning_rates
            .iter()
            .map(|r| (r.ln() - lr.ln()).abs())
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |best, (i, d)| if d < best.1 { (i, d) } else { best },
            );
        self.losses[nearest.0]
    }
}

/// The debiased moving average of a loss and fastai's stopping rule.
struct Smoother {
    beta: f64,
    diverge: f64,
    average: f64,
    count: i32,
    best: f64,
    value: f64,
}

impl Smoother {
    fn new(beta: f64, diverge: f64) -> Self {
        Self {
            beta,
            diverge,
            average: 0.0,
            count: 0,
            best: f64::INFINITY,
            value: f64::NAN,
        }
    }

    /// Adds a loss; whether the sweep should stop here.
    fn push(&mut self, loss: f64) -> bool {
        self.count += 1;
        self.average = self.beta * self.average + (1.0 - self.beta) * loss;
        self.value = self.average / (1.0 - self.beta.powi(self.count));
        if self.value < self.best {
            self.best = self.value;
        }
        !self.value.is_finite() || self.value > self.diverge * self.best
    }
}

/// fastai's `valley`: about halfway along the longest stretch over which the loss
/// keeps falling. The stretch is the longest decreasing subsequence of `losses` (not
/// necessarily contiguous, found by fastai's quadratic dynamic programme), from `start`
/// to `end`; the index is `start + s + s / 2` with `s = (end - start) / 3`, each term
/// rounded down.
pub fn valley(losses: &[f64]) -> Option<usize> {
    let n = losses.len();
    if n == 0 {
        return None;
    }
    let mut lds = vec![1usize; n];
    // Signed, as in fastai: a stretch that starts at the first point puts its start at -1.
    let (mut max_start, mut max_end) = (0isize, 0usize);
    for i in 1..n {
        for j in 0..i {
            if losses[i] < losses[j] && lds[i] < lds[j] + 1 {
                lds[i] = lds[j] + 1;
            }
            if lds[max_end] < lds[i] {
                max_end = i;
                max_start = max_end as isize - lds[max_end] as isize;
            }
        }
    }
    let sections = (max_end as isize - max_start) as f64 / 3.0;
    let index = max_start + sections as isize + (sections / 2.0) as isize;
    // A negative index counts from the end, as Python's does.
    Some(if index < 0 {
        (n as isize + index) as usize
    } else {
        index as usize
    })
}

/// fastai's `minimum`: the index of the lowest loss (the first, on a tie); the
/// suggestion is a tenth of its rate.
pub fn minimum(losses: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &l) in losses.iter().enumerate() {
        if best.is_none_or(|b| l < losses[b]) {
            best = Some(i);
        }
    }
    best
}

/// fastai's `steep`: the index `i` where `(loss[i+1] - loss[i]) / (ln lr[i+1] - ln
/// lr[i])` is lowest (the first, on a tie).
pub fn steep(learning_rates: &[f64], losses: &[f64]) -> Option<usize> {
    let slopes: Vec<f64> = (0..losses.len().saturating_sub(1))
        .map(|i| {
            (losses[i + 1] - losses[i]) / (learning_rates[i + 1].ln() - learning_rates[i].ln())
        })
        .collect();
    minimum(&slopes)
}

impl<B: Backend, M: Model<B>> Trainer<B, M> {
    /// The learning-rate range test (fastai's `lr_find`): `options.steps` training
    /// steps on batches drawn from `data`, the rate growing exponentially from
    /// `start_lr` to `end_lr` (`start * (end / start)^(i / steps)` at step `i`), until
    /// the smoothed loss exceeds `diverge` times its best or turns non-finite. The
    /// weights, the optimizer's state and its rate are then put back, whatever
    /// happened.
    ///
    /// The optimizer must have a fixed rate (a schedule would override the sweep's),
    /// and the trainer no moving average of the weights (which the sweep would move):
    /// add [`Trainer::ema`] after. Read the result with [`LrFind::suggestion`] and draw
    /// it with [`LrFind::plot`].
    pub fn lr_find(
        &mut self,
        data: impl Dataset + 'static,
        options: &LrFindOptions,
    ) -> Result<LrFind> {
        options.check()?;
        if self.average().is_some() {
            return Err(Error::Config(
                "lr_find would move the trainer's moving average of the weights: run it \
                 before adding one"
                    .into(),
            ));
        }
        let data: SharedData = Arc::new(data);
        if data.len() < options.batch_size {
            return Err(Error::Config(format!(
                "lr_find needs a batch of {} samples, the data holds {}",
                options.batch_size,
                data.len()
            )));
        }
        let weights = Weights::of(self.model())?;
        let backend = self.model().backend().clone();
        let state = self.optimizer().state(&backend)?;
        let rate = self.optimizer().learning_rate();
        let swept = self.sweep(&data, options);
        // Put everything back before looking at how the sweep went.
        weights.restore(self.model_mut())?;
        let (model, optimizer) = self.parts_mut();
        optimizer.load_state(&*model, &state)?;
        optimizer.set_learning_rate(rate)?;
        let (lrs, raw) = swept?;
        Ok(LrFind::from_raw(&lrs, &raw, options))
    }

    /// The sweep itself: one `fit` of one batch a step (so that nothing in the fit
    /// loop needs to stop mid-epoch), the rates and raw losses recorded until the
    /// smoothed loss diverges.
    fn sweep(
        &mut self,
        data: &SharedData,
        options: &LrFindOptions,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let batch = options.batch_size;
        let mut order: Vec<usize> = Vec::new();
        let mut rng = Rng::new(options.seed);
        let mut smoother = Smoother::new(options.smoothing, options.diverge);
        let (mut lrs, mut losses) = (Vec::new(), Vec::new());
        for step in 0..options.steps {
            if order.len() < batch {
                order.extend(shuffled(data.len(), &mut rng));
            }
            let indices: Vec<usize> = order.drain(..batch).collect();
            let lr = options.start_lr
                * (options.end_lr / options.start_lr).powf(step as f64 / options.steps as f64);
            self.optimizer_mut().set_learning_rate(lr)?;
            let fit = FitOptions::new(1, batch)
                .shuffle(false)
                .pipeline(options.pipeline.clone())
                .augment(options.augment)
                .seed(options.seed.wrapping_add(step as u64))
                .verbose(Verbosity::Silent);
            let loss = match self.fit(Subset::new(Arc::clone(data), indices)?, fit) {
                Ok(history) => history
                    .epochs
                    .last()
                    .and_then(|e| e.get("loss"))
                    .unwrap_or(f64::NAN),
                // A loss or gradient gone non-finite ends the sweep, as divergence does.
                Err(Error::NonFinite { .. }) => f64::NAN,
                Err(e) => return Err(e),
            };
            lrs.push(lr);
            losses.push(loss);
            if smoother.push(loss) {
                break;
            }
        }
        Ok((lrs, losses))
    }
}

/// `0..n` in a random order (Fisher-Yates).
fn shuffled(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_debiased() {
        // The first value is the loss itself, not (1 - beta) times it.
        let curve = LrFind::from_raw(&[1e-3, 1e-2], &[2.0, 1.0], &LrFindOptions::new(1));
        assert_eq!(curve.losses[0], 2.0);
        // (0.98 * 0.02 * 2 + 0.02 * 1) / (1 - 0.98^2)
        let want = (0.98 * 0.02 * 2.0 + 0.02 * 1.0) / (1.0 - 0.98f64.powi(2));
        assert!((curve.losses[1] - want).abs() < 1e-12);
    }

    #[test]
    fn a_sweep_stops_where_the_loss_diverges() {
        let lrs: Vec<f64> = (0..6).map(|i| 10f64.powi(i - 5)).collect();
        let mut options = LrFindOptions::new(1).steps(6);
        options.smoothing = 0.0;
        let curve = LrFind::from_raw(&lrs, &[1.0, 0.5, 0.5, 50.0, 1.0, 1.0], &options);
        assert!(curve.diverged);
        assert_eq!(curve.losses.len(), 4);
        let curve = LrFind::from_raw(&lrs, &[1.0, f64::NAN, 1.0, 1.0, 1.0, 1.0], &options);
        assert_eq!((curve.losses.len(), curve.diverged), (2, true));
    }

    #[test]
    fn suggestions_on_a_short_curve_are_none() {
        let curve = LrFind::from_raw(
            &[1e-3, 1e-2, 1e-1],
            &[1.0, 0.9, 0.8],
            &LrFindOptions::new(1),
        );
        assert_eq!(curve.suggestion(), None);
        assert_eq!(valley(&[]), None);
        assert_eq!(steep(&[1.0], &[1.0]), None);
    }

    #[test]
    fn bad_options_are_errors() {
        for options in [
            LrFindOptions::new(8).range(1.0, 0.1),
            LrFindOptions::new(8).range(0.0, 1.0),
            LrFindOptions::new(8).steps(1),
        ] {
            let e = options.check().err().map(|e| e.to_string());
            assert!(e.is_some_and(|e| e.starts_with("lr_find: ")), "{options:?}");
        }
    }
}
