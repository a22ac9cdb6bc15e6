//! Metrics: accuracy (sparse, categorical, binary), top-k accuracy, precision,
//! recall, F1, the confusion matrix, MAE, MSE, RMSE and R².
//!
//! Every batch adds to small accumulators on the backend (the confusion matrix and
//! top-k hits, or compensated error sums, see
//! [`kiln_kernels::ops::metric`]); the host reads them once per log interval and
//! derives every metric from them. Precision, recall and F1 are those of the
//! positive class for a single output, and macro averages over the classes
//! otherwise (Keras's `average="macro"`).

use std::fmt;

use kiln_kernels::Backend;
use kiln_kernels::ops::metric::{MetricKind, MetricParams, regression};

use crate::{Error, Result};

/// One metric to report.
#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    /// The fraction of samples classified right: the largest output for several
    /// classes (labels or one-hot targets), the output against 0.5 for one.
    Accuracy,
    /// Accuracy of a single output against `threshold` (a probability; kiln converts
    /// it when the output holds logits).
    BinaryAccuracy {
        /// The decision threshold (0.5).
        threshold: f32,
    },
    /// The fraction of samples whose label is among the `k` largest outputs.
    TopKAccuracy(usize),
    /// True positives over predicted positives.
    Precision,
    /// True positives over actual positives.
    Recall,
    /// The harmonic mean of precision and recall.
    F1,
    /// Mean absolute error.
    MeanAbsoluteError,
    /// Mean squared error.
    MeanSquaredError,
    /// Root mean squared error.
    RootMeanSquaredError,
    /// The coefficient of determination, `1 - SSE / SST`, over all outputs.
    R2,
}

impl Metric {
    /// The name it is logged under (Keras's).
    pub fn name(&self) -> String {
        match self {
            Self::Accuracy => "accuracy".into(),
            Self::BinaryAccuracy { .. } => "binary_accuracy".into(),
            Self::TopKAccuracy(k) => format!("top_{k}_accuracy"),
            Self::Precision => "precision".into(),
            Self::Recall => "recall".into(),
            Self::F1 => "f1_score".into(),
            Self::MeanAbsoluteError => "mae".into(),
            Self::MeanSquaredError => "mse".into(),
            Self::RootMeanSquaredError => "rmse".into(),
            Self::R2 => "r2_score".into(),
        }
    }

    fn is_regression(&self) -> bool {
        matches!(
            self,
            Self::MeanAbsoluteError
                | Self::MeanSquaredError
                | Self::RootMeanSquaredError
                | Self::R2
        )
    }

    /// The top-k of the accumulator this metric reads.
    fn top_k(&self) -> u32 {
        match self {
            Self::TopKAccuracy(k) => u32::try_from(*k).unwrap_or(u32::MAX),
            _ => 1,
        }
    }
}

/// Counts of (true class, predicted class).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    /// The number of classes.
    pub classes: usize,
    /// `classes x classes` counts, the true class by row.
    pub counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// Samples of true class `truth` predicted as `predicted` (0 for a class the
    /// matrix does not have).
    pub fn get(&self, truth: usize, predicted: usize) -> u64 {
        if truth >= self.classes || predicted >= self.classes {
            return 0;
        }
        self.counts
            .get(truth * self.classes + predicted)
            .copied()
            .unwrap_or(0)
    }

    /// All samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Precision, recall and F1 of `class` (0 where undefined, as scikit-learn's
    /// `zero_division=0`).
    pub fn class_scores(&self, class: usize) -> (f64, f64, f64) {
        let tp = self.get(class, class) as f64;
        let predicted: u64 = (0..self.classes).map(|t| self.get(t, class)).sum();
        let actual: u64 = (0..self.classes).map(|p| self.get(class, p)).sum();
        let ratio = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
        let (precision, recall) = (ratio(tp, predicted), ratio(tp, actual));
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        (precision, recall, f1)
    }
}

impl fmt::Display for ConfusionMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .counts
            .iter()
            .map(|c| c.to_string().len())
            .max()
            .unwrap_or(1)
            .max(3);
        write!(f, "{:>6}", "true\\pred")?;
        for p in 0..self.classes {
            write!(f, " {p:>width$}")?;
        }
        writeln!(f)?;
        for t in 0..self.classes {
            write!(f, "{t:>9}")?;
            for p in 0..self.classes {
                write!(f, " {:>width$}", self.get(t, p))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// The metrics of one run over data, with their accumulators on the backend.
#[derive(Debug)]
pub(crate) struct MetricSet<B: Backend> {
    metrics: Vec<Metric>,
    /// One classification accumulator per distinct top-k.
    classification: Vec<(MetricParams, B::Buffer)>,
    regression: Option<(MetricParams, B::Buffer)>,
    host: Vec<f32>,
}

impl<B: Backend> MetricSet<B> {
    /// Accumulators for `metrics` on outputs of `features` values, with targets that
    /// are labels (`sparse`) or rows, and outputs that are logits or not.
    pub(crate) fn new(
        backend: &B,
        metrics: &[Metric],
        features: usize,
        sparse: bool,
        logits: bool,
    ) -> Result<Self> {
        let features_u32 =
            u32::try_from(features).map_err(|_| Error::Config("output too wide".into()))?;
        let mut threshold = 0.5f32;
        for m in metrics {
            if let Metric::BinaryAccuracy { threshold: t } = m {
                threshold = *t;
            }
            if let Metric::TopKAccuracy(k) = m
                && (*k == 0 || *k > features)
            {
                return Err(Error::Config(format!(
                    "top-{k} accuracy needs 1 <= k <= {features} outputs"
                )));
            }
            if matches!(m, Metric::BinaryAccuracy { .. }) && features != 1 {
                return Err(Error::Config(format!(
                    "binary_accuracy needs a single output; the model has {features}: use accuracy"
                )));
            }
        }
        if logits {
            threshold = (threshold / (1.0 - threshold)).ln();
        }
        let mut classification: Vec<(MetricParams, B::Buffer)> = Vec::new();
        for m in metrics.iter().filter(|m| !m.is_regression()) {
            let k = m.top_k();
            if classification.iter().any(|(p, _)| p.top_k == k) {
                continue;
            }
            let params = MetricParams {
                kind: MetricKind::Classification,
                batch: 0,
                features: features_u32,
                sparse: u32::from(sparse && features > 1),
                top_k: k,
                threshold,
            };
            classification.push((params, backend.alloc(params.accumulator_len())?));
        }
        let regression = if metrics.iter().any(Metric::is_regression) {
            if sparse {
                return Err(Error::Config(
                    "regression metrics need real-valued targets, not class labels".into(),
                ));
            }
            let params = MetricParams {
                kind: MetricKind::Regression,
                batch: 0,
                features: features_u32,
                sparse: 0,
                top_k: 0,
                threshold: 0.0,
            };
            Some((params, backend.alloc(params.accumulator_len())?))
        } else {
            None
        };
        let longest = classification
            .iter()
            .map(|(p, _)| p.accumulator_len())
            .chain(regression.iter().map(|(p, _)| p.accumulator_len()))
            .max()
            .unwrap_or(0);
        Ok(Self {
            metrics: metrics.to_vec(),
            classification,
            regression,
            host: vec![0.0; longest],
        })
    }

    /// Starts a new window.
    pub(crate) fn reset(&mut self, backend: &B) -> Result<()> {
        for (p, acc) in self
            .classification
            .iter_mut()
            .chain(self.regression.iter_mut())
        {
            backend.fill(acc, p.accumulator_len(), 0.0)?;
        }
        Ok(())
    }

    /// Adds one batch of `batch` outputs and its staged targets.
    pub(crate) fn update(
        &mut self,
        backend: &B,
        batch: usize,
        output: &B::Buffer,
        target: &B::Buffer,
    ) -> Result<()> {
        let batch = u32::try_from(batch).map_err(|_| Error::Config("batch too large".into()))?;
        for (p, acc) in self
            .classification
            .iter_mut()
            .chain(self.regression.iter_mut())
        {
            backend.metric_accumulate(&MetricParams { batch, ..*p }, output, target, acc)?;
        }
        Ok(())
    }

    /// Sums every accumulator over the ranks of `world`, so that the values that
    /// follow are those of all the ranks' samples. The counts and the compensated sums
    /// add up exactly (in `f64`, back to `f32`, exact for counts below 2^24).
    pub(crate) fn all_reduce(
        &mut self,
        backend: &B,
        world: &kiln_distributed::World,
    ) -> Result<()> {
        for (p, acc) in self
            .classification
            .iter_mut()
            .chain(self.regression.iter_mut())
        {
            let host = &mut self.host[..p.accumulator_len()];
            backend.download(acc, host)?;
            let mut sums: Vec<f64> = host.iter().map(|v| f64::from(*v)).collect();
            world.sum_f64(&mut sums)?;
            for (h, s) in host.iter_mut().zip(&sums) {
                *h = *s as f32;
            }
            backend.upload(host, acc)?;
        }
        Ok(())
    }

    /// The confusion matrix of the window so far (reads the accumulator back).
    pub(crate) fn confusion(&mut self, backend: &B) -> Result<Option<ConfusionMatrix>> {
        let Some((p, acc)) = self.classification.first() else {
            return Ok(None);
        };
        let classes = p.classes();
        let host = &mut self.host[..p.accumulator_len()];
        backend.download(acc, host)?;
        Ok(Some(ConfusionMatrix {
            classes,
            counts: host[..classes * classes]
                .iter()
                .map(|&c| c as u64)
                .collect(),
        }))
    }

    /// Every metric's value over the window so far (reads each accumulator back
    /// once).
    pub(crate) fn values(&mut self, backend: &B, out: &mut Vec<(String, f64)>) -> Result<()> {
        let confusion = self.confusion(backend)?;
        let mut top_k = Vec::with_capacity(self.classification.len());
        for (p, acc) in &self.classification {
            let host = &mut self.host[..p.accumulator_len()];
            backend.download(acc, host)?;
            let classes = p.classes();
            let (hits, count) = (host[classes * classes], host[classes * classes + 1]);
            top_k.push((p.top_k, f64::from(hits) / f64::from(count).max(1.0)));
        }
        let mut sums = [0.0f64; 5];
        if let Some((p, acc)) = &self.regression {
            let host = &mut self.host[..p.accumulator_len()];
            backend.download(acc, host)?;
            for (i, slot) in [
                regression::ABS_ERROR,
                regression::SQUARED_ERROR,
                regression::TARGET,
                regression::TARGET_SQUARED,
            ]
            .into_iter()
            .enumerate()
            {
                sums[i] = f64::from(host[slot]) - f64::from(host[slot + 1]);
            }
            sums[4] = f64::from(host[regression::COUNT]);
        }
        let n = sums[4].max(1.0);
        for m in &self.metrics {
            let value = match m {
                Metric::Accuracy | Metric::BinaryAccuracy { .. } => {
                    confusion.as_ref().map_or(0.0, |c| {
                        let right: u64 = (0..c.classes).map(|i| c.get(i, i)).sum();
                        right as f64 / c.total().max(1) as f64
                    })
                }
                Metric::TopKAccuracy(_) => {
                    let k = m.top_k();
                    top_k
                        .iter()
                        .find(|(kk, _)| *kk == k)
                        .map_or(0.0, |(_, v)| *v)
                }
                Metric::Precision | Metric::Recall | Metric::F1 => {
                    let pick = |(p, r, f): (f64, f64, f64)| match m {
                        Metric::Precision => p,
                        Metric::Recall => r,
                        _ => f,
                    };
                    confusion.as_ref().map_or(0.0, |c| {
                        if c.classes == 2 && self.classification[0].0.features == 1 {
                            pick(c.class_scores(1))
                        } else {
                            (0..c.classes).map(|k| pick(c.class_scores(k))).sum::<f64>()
                                / c.classes as f64
                        }
                    })
                }
                Metric::MeanAbsoluteError => sums[0] / n,
                Metric::MeanSquaredError => sums[1] / n,
                Metric::RootMeanSquaredError => (sums[1] / n).sqrt(),
                Metric::R2 => {
                    let total = sums[3] - sums[2] * sums[2] / n;
                    if total > 0.0 {
                        1.0 - sums[1] / total
                    } else {
                        0.0
                    }
                }
            };
            out.push((m.name(), value));
        }
        Ok(())
    }
}
