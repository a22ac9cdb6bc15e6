//! The tree-structured Parzen estimator (Bergstra et al., 2011), as Optuna's
//! `TPESampler` runs it by default: each parameter on its own, random draws for the
//! first 10 finished trials, then 24 candidates drawn from the density of the good
//! trials' values and the one most likely under it relative to the others' kept.

use kiln_kernels::rng::Rng;

use super::samplers::{SampleContext, Sampler, draw_uniform, ranked_observations, uniform};
use super::trial::Distribution;

/// Optuna's TPE with its defaults: `n_startup_trials = 10`, `n_ei_candidates = 24`,
/// `gamma(n) = min(ceil(0.1 n), 25)` trials counted good, Optuna's weights (recent
/// trials weigh more past 25), a prior of weight 1, and the "magic clip" of the kernel
/// widths.
#[derive(Clone, Copy, Debug)]
pub struct Tpe {
    startup: usize,
    candidates: usize,
}

impl Default for Tpe {
    fn default() -> Self {
        Self {
            startup: 10,
            candidates: 24,
        }
    }
}

impl Tpe {
    /// Optuna's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same with `n` random trials before the model takes over.
    #[must_use]
    pub fn startup_trials(mut self, n: usize) -> Self {
        self.startup = n;
        self
    }

    /// The same with `n` candidates a draw.
    #[must_use]
    pub fn candidates(mut self, n: usize) -> Self {
        self.candidates = n.max(1);
        self
    }
}

/// Optuna's `default_gamma`: how many of `n` finished trials count as good.
fn gamma(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

/// Optuna's `default_weights`: flat for up to 25 observations, else a ramp from `1/n`
/// to 1 over the oldest `n - 25` and 1 for the newest 25 (the observations in the
/// order of their trials' numbers).
fn weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let mut w: Vec<f64> = (0..ramp)
        .map(|i| {
            if ramp == 1 {
                1.0 / n as f64
            } else {
                1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    w.extend(std::iter::repeat_n(1.0, 25));
    w
}

const PRIOR_WEIGHT: f64 = 1.0;

/// A mixture of truncated normals on `low..high`, or of categorical kernels.
enum Parzen {
    Numbers {
        low: f64,
        high: f64,
        weights: Vec<f64>,
        mus: Vec<f64>,
        sigmas: Vec<f64>,
    },
    Choices {
        weights: Vec<f64>,
        /// One row of `n` probabilities a kernel.
        kernels: Vec<Vec<f64>>,
    },
}

fn normalise(w: &mut [f64]) {
    let sum: f64 = w.iter().sum();
    if sum > 0.0 {
        w.iter_mut().for_each(|x| *x /= sum);
    }
}

impl Parzen {
    /// Optuna's univariate estimator of `observations` (internal space), with the prior.
    fn new(observations: &[f64], distribution: &Distribution) -> Self {
        let mut weights = weights(observations.len());
        weights.push(PRIOR_WEIGHT);
        normalise(&mut weights);
        if let Distribution::Categorical { choices } = distribution {
            let n = choices.len();
            let kernels_n = observations.len() + 1;
            let mut kernels: Vec<Vec<f64>> = observations
                .iter()
                .map(|&o| {
                    let mut row = vec![PRIOR_WEIGHT / kernels_n as f64; n];
                    if let Some(x) = row.get_mut(o as usize) {
                        *x += 1.0;
                    }
                    normalise(&mut row);
                    row
                })
                .collect();
            kernels.push(vec![1.0 / n as f64; n]);
            return Self::Choices { weights, kernels };
        }
        let (low, high) = distribution.internal_range().unwrap_or((0.0, 1.0));
        let mut mus = observations.to_vec();
        mus.push(0.5 * (low + high));
        let mut order: Vec<usize> = (0..mus.len()).collect();
        order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]));
        let mut ends = vec![low];
        ends.extend(order.iter().map(|&i| mus[i]));
        ends.push(high);
        let m = mus.len();
        let mut sorted_sigmas: Vec<f64> = (0..m)
            .map(|i| (ends[i + 1] - ends[i]).max(ends[i + 2] - ends[i + 1]))
            .collect();
        if ends.len() >= 4 {
            // consider_endpoints = False: the outer kernels ignore the range's ends.
            sorted_sigmas[0] = ends[2] - ends[1];
            sorted_sigmas[m - 1] = ends[m] - ends[m - 1];
        }
        let mut sigmas = vec![0.0; m];
        for (rank, &i) in order.iter().enumerate() {
            sigmas[i] = sorted_sigmas[rank];
        }
        let width = high - low;
        let min_sigma = width / (1.0 + m as f64).min(100.0);
        for s in &mut sigmas {
            *s = s.clamp(min_sigma, width);
        }
        sigmas[m - 1] = width;
        Self::Numbers {
            low,
            high,
            weights,
            mus,
            sigmas,
        }
    }

    fn pick(weights: &[f64], rng: &mut Rng) -> usize {
        let mut u = uniform(rng);
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                return i;
            }
            u -= w;
        }
        weights.len() - 1
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
        match self {
            Self::Numbers {
                low,
                high,
                weights,
                mus,
                sigmas,
            } => {
                let k = Self::pick(weights, rng);
                truncated_normal(rng, mus[k], sigmas[k], *low, *high)
            }
            Self::Choices { weights, kernels } => {
                let k = Self::pick(weights, rng);
                Self::pick(&kernels[k], rng) as f64
            }
        }
    }

    fn log_pdf(&self, x: f64) -> f64 {
        let terms: Vec<f64> = match self {
            Self::Numbers {
                low,
                high,
                weights,
                mus,
                sigmas,
            } => (0..mus.len())
                .map(|i| {
                    let (mu, s) = (mus[i], sigmas[i]);
                    let z = normal_cdf((high - mu) / s) - normal_cdf((low - mu) / s);
                    let d = (x - mu) / s;
                    weights[i].ln()
                        - 0.5 * d * d
                        - s.ln()
                        - 0.5 * (2.0 * std::f64::consts::PI).ln()
                        - z.max(1e-300).ln()
                })
                .collect(),
            Self::Choices { weights, kernels } => kernels
                .iter()
                .zip(weights)
                .map(|(row, w)| {
                    w.ln() + row.get(x as usize).copied().unwrap_or(0.0).max(1e-300).ln()
                })
                .collect(),
        };
        let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()
    }
}

/// The standard normal's distribution function, from `erfc`.
fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, relative error
/// under 1.2e-7 everywhere).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// A normal draw (Box-Muller) of mean `mu` and deviation `sigma`, redrawn until it
/// falls in `low..=high` (at worst clamped after many tries).
fn truncated_normal(rng: &mut Rng, mu: f64, sigma: f64, low: f64, high: f64) -> f64 {
    for _ in 0..200 {
        let u1 = uniform(rng).max(1e-300);
        let u2 = uniform(rng);
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let x = mu + sigma * z;
        if (low..=high).contains(&x) {
            return x;
        }
    }
    mu.clamp(low, high)
}

impl Sampler for Tpe {
    fn sample(&self, context: &SampleContext<'_>, name: &str, distribution: &Distribution) -> f64 {
        let mut rng = context.rng(name);
        let ranked = ranked_observations(context.history, context.direction, name, distribution);
        if ranked.len() < self.startup {
            return draw_uniform(&mut rng, distribution);
        }
        // The best `gamma(n)` are the good trials, the rest the others; each set in
        // the order of the trials' numbers, which the weights read as age.
        let (below, above) = ranked.split_at(gamma(ranked.len()));
        let by_age = |part: &[(f64, usize)]| {
            let mut part = part.to_vec();
            part.sort_by_key(|o| o.1);
            part.into_iter().map(|o| o.0).collect::<Vec<f64>>()
        };
        let good = Parzen::new(&by_age(below), distribution);
        let bad = Parzen::new(&by_age(above), distribution);
        let mut best = (f64::NEG_INFINITY, draw_uniform(&mut rng, distribution));
        for _ in 0..self.candidates {
            let x = good.sample(&mut rng);
            let score = good.log_pdf(x) - bad.log_pdf(x);
            if score > best.0 {
                best = (score, x);
            }
        }
        best.1
    }

    fn describe(&self) -> String {
        format!(
            "tpe(startup {}, candidates {})",
            self.startup, self.candidates
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optuna_gamma_and_weights() {
        assert_eq!([gamma(1), gamma(10), gamma(11), gamma(300)], [1, 1, 2, 25]);
        assert_eq!(weights(3), [1.0; 3]);
        let w = weights(27);
        assert!((w[0] - 1.0 / 27.0).abs() < 1e-12 && w[1] == 1.0 && w.len() == 27);
    }

    #[test]
    fn erfc_matches_known_values() {
        // scipy.special.erfc(0.5), erfc(-1.3), erfc(3)
        for (x, want) in [
            (0.5, 0.479_500_122_186_953_5),
            (-1.3, 1.934_008_016_679_297),
            (3.0, 2.209_049_699_858_544e-5),
        ] {
            assert!(
                ((erfc(x) - want) / want).abs() < 2e-7,
                "erfc({x}) = {}",
                erfc(x)
            );
        }
    }

    #[test]
    fn a_parzen_density_integrates_to_one() {
        let d = Distribution::Float {
            low: 0.0,
            high: 1.0,
            log: false,
        };
        let p = Parzen::new(&[0.2, 0.25, 0.9], &d);
        let n = 20_000;
        let integral: f64 = (0..n)
            .map(|i| p.log_pdf((i as f64 + 0.5) / n as f64).exp() / n as f64)
            .sum();
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
    }
}
