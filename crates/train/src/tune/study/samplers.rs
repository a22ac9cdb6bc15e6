//! Samplers: how a trial's parameter values are drawn. [`Random`] draws each
//! uniformly, [`Grid`] walks every combination of a few values a parameter, and
//! [`Tpe`] (in `tpe.rs`) models which values gave good results.
//!
//! Every draw is a function of the study's seed, the trial's number and the
//! parameter's name, so a resumed or parallel study draws what a single run would
//! have drawn for the same trial and history.

use kiln_kernels::rng::{Rng, mix64};

use super::trial::{Distribution, Param};
use super::{Direction, TrialRecord};

/// What a sampler sees when it draws a parameter.
pub struct SampleContext<'a> {
    /// The trial's number.
    pub number: usize,
    /// The study's seed.
    pub seed: u64,
    /// Whether the study minimises or maximises.
    pub direction: Direction,
    /// The study's trials when this one started.
    pub history: &'a [TrialRecord],
    /// The parameters this trial drew before this one, in order.
    pub earlier: &'a [Param],
}

impl SampleContext<'_> {
    /// A generator for parameter `name` of this trial.
    pub fn rng(&self, name: &str) -> Rng {
        Rng::new(mix64(
            self.seed ^ mix64(self.number as u64 ^ name_hash(name)),
        ))
    }
}

/// FNV-1a of `name`.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A uniform number in `[0, 1)` with 53 random bits.
pub(crate) fn uniform(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// How a study draws parameter values.
pub trait Sampler: Send + Sync + std::fmt::Debug {
    /// A value of `name` in `distribution`'s internal space (the logarithm for a log
    /// range; a category's index), which the trial rounds and clamps.
    fn sample(&self, context: &SampleContext<'_>, name: &str, distribution: &Distribution) -> f64;

    /// The sampler and its settings, as the study folder records them (a study folder
    /// refuses a study with another sampler).
    fn describe(&self) -> String;

    /// Whether trial `number` would have nothing new to draw (a grid walked through).
    fn exhausted(&self, _number: usize) -> bool {
        false
    }
}

/// A uniform draw in `distribution`'s internal space.
pub(crate) fn draw_uniform(rng: &mut Rng, distribution: &Distribution) -> f64 {
    match (distribution, distribution.internal_range()) {
        (_, Some((low, high))) => low + (high - low) * uniform(rng),
        (Distribution::Categorical { choices }, None) => {
            (rng.next_u64() % choices.len().max(1) as u64) as f64
        }
        _ => 0.0,
    }
}

/// Every parameter drawn uniformly from its range (in its logarithm for a log
/// range), independently.
#[derive(Clone, Copy, Debug, Default)]
pub struct Random;

impl Sampler for Random {
    fn sample(&self, context: &SampleContext<'_>, name: &str, distribution: &Distribution) -> f64 {
        draw_uniform(&mut context.rng(name), distribution)
    }

    fn describe(&self) -> String {
        "random".into()
    }
}

/// Every combination of `points` values of each number (evenly spaced over its
/// range, in its logarithm for a log range; every integer when the range holds
/// fewer) and every choice of each category, one combination a trial.
///
/// The grid is laid out as the trials draw: the first parameter a trial suggests
/// varies fastest. A study on a grid stops when the grid is walked through; with `n`
/// parameters of `k` values each that is `k^n` trials, which is why grids suit two
/// or three parameters.
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    points: usize,
    /// The combinations, once known (the product of the axes' sizes).
    size: Option<usize>,
}

impl Grid {
    /// A grid of `points` values a numeric parameter (at least 2).
    pub fn new(points: usize) -> Self {
        Self {
            points: points.max(2),
            size: None,
        }
    }

    /// The same, stopping the study after `size` combinations (the product of the
    /// axes' sizes, which the grid cannot know before the first trial has drawn
    /// every parameter).
    #[must_use]
    pub fn size(mut self, size: usize) -> Self {
        self.size = Some(size);
        self
    }

    /// The values of `distribution`'s axis, in its internal space.
    pub fn axis(&self, distribution: &Distribution) -> Vec<f64> {
        match distribution {
            Distribution::Categorical { choices } => (0..choices.len()).map(|i| i as f64).collect(),
            Distribution::Int {
                low,
                high,
                log: false,
            } if (high - low + 1) as usize <= self.points => {
                (*low..=*high).map(|v| v as f64).collect()
            }
            _ => {
                let Some((low, high)) = distribution.internal_range() else {
                    return vec![0.0];
                };
                let (low, high) = match distribution {
                    // The widened integer range's ends would round outside it.
                    Distribution::Int { low, high, .. } => (
                        distribution.to_internal(*low as f64),
                        distribution.to_internal(*high as f64),
                    ),
                    _ => (low, high),
                };
                let n = self.points;
                (0..n)
                    .map(|i| low + (high - low) * i as f64 / (n - 1) as f64)
                    .collect()
            }
        }
    }
}

impl Sampler for Grid {
    fn sample(&self, context: &SampleContext<'_>, _name: &str, distribution: &Distribution) -> f64 {
        let stride: usize = context
            .earlier
            .iter()
            .map(|p| self.axis(&p.distribution).len())
            .product();
        let axis = self.axis(distribution);
        axis[(context.number / stride.max(1)) % axis.len()]
    }

    fn describe(&self) -> String {
        format!("grid(points {})", self.points)
    }

    fn exhausted(&self, number: usize) -> bool {
        self.size.is_some_and(|size| number >= size)
    }
}

/// The direction-adjusted objective of a finished trial, smaller being better.
pub(crate) fn loss_of(direction: Direction, value: f64) -> f64 {
    match direction {
        Direction::Minimize => value,
        Direction::Maximize => -value,
    }
}

/// The trials that drew `name` with `distribution` and finished, ranked as Optuna's
/// TPE splits them (complete first, by objective, best first; then pruned ones, those
/// that went furthest first, then by their last value), each as its value of `name`
/// in the internal space and its trial number.
pub(crate) fn ranked_observations(
    history: &[TrialRecord],
    direction: Direction,
    name: &str,
    distribution: &Distribution,
) -> Vec<(f64, usize)> {
    use super::TrialState;
    let value_of = |t: &TrialRecord| {
        t.params
            .iter()
            .find(|p| p.name == name && p.distribution == *distribution)
            .map(|p| distribution.to_internal(p.value))
    };
    let mut complete: Vec<(f64, f64, usize)> = history
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| Some((loss_of(direction, t.value?), value_of(t)?, t.number)))
        .collect();
    complete.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut pruned: Vec<(usize, f64, f64, usize)> = history
        .iter()
        .filter(|t| t.state == TrialState::Pruned)
        .filter_map(|t| {
            let &(step, last) = t.intermediate.last()?;
            // A NaN last value ranks last at its step, as Optuna's score does.
            let last = if last.is_nan() {
                f64::INFINITY
            } else {
                loss_of(direction, last)
            };
            Some((step, last, value_of(t)?, t.number))
        })
        .collect();
    pruned.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.total_cmp(&b.1)));
    complete
        .into_iter()
        .map(|c| (c.1, c.2))
        .chain(pruned.into_iter().map(|p| (p.2, p.3)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_walks_every_combination_once() {
        let grid = Grid::new(3);
        let a = Distribution::Float {
            low: 1e-4,
            high: 1e-2,
            log: true,
        };
        let b = Distribution::Categorical {
            choices: vec!["x".into(), "y".into()],
        };
        let mut seen = Vec::new();
        for number in 0..6 {
            let mut earlier = Vec::new();
            for (name, d) in [("a", &a), ("b", &b)] {
                let context = SampleContext {
                    number,
                    seed: 0,
                    direction: Direction::Minimize,
                    history: &[],
                    earlier: &earlier,
                };
                let value = d.value_of(grid.sample(&context, name, d));
                earlier.push(Param {
                    name: name.into(),
                    distribution: d.clone(),
                    value,
                });
            }
            seen.push((
                format!("{:.0e}", earlier[0].value),
                earlier[1].value as usize,
            ));
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 6, "{seen:?}");
        assert_eq!(seen[0], ("1e-4".to_string(), 0));
        assert_eq!(seen[1], ("1e-3".to_string(), 0));
        assert_eq!(seen[5], ("1e-2".to_string(), 1));
    }

    #[test]
    fn integer_axes_hold_integers_in_range() {
        let grid = Grid::new(4);
        let d = Distribution::Int {
            low: 16,
            high: 128,
            log: true,
        };
        let values: Vec<f64> = grid.axis(&d).into_iter().map(|x| d.value_of(x)).collect();
        assert_eq!(values, [16.0, 32.0, 64.0, 128.0]);
        let d = Distribution::Int {
            low: 1,
            high: 3,
            log: false,
        };
        assert_eq!(grid.axis(&d), [1.0, 2.0, 3.0]);
    }
}
