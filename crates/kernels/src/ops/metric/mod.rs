//! Metrics accumulated where the outputs live: each batch adds to a small accumulator
//! buffer, which the host reads once per log interval instead of reading every
//! batch's outputs back.
//!
//! Classification accumulates a confusion matrix (`classes x classes` counts, the
//! true class by row, the predicted by column), the number of samples whose label is
//! among the `top_k` largest outputs, and the number of samples. A single output is a
//! binary classifier: predicted positive when the output reaches `threshold`, truly
//! positive when the target is at least 0.5. Regression accumulates the sums of
//! `|error|`, `error^2`, `y`, `y^2` and the count of values, each with a Kahan
//! compensation term, so that an epoch's R² does not drown in rounding. Counts are
//! exact up to 2^24 a window.

mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use crate::Result;
use crate::storage::Storage;

/// Which family of metrics; the numbering is shared with the GPU kernels.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Confusion matrix, top-k hits and count.
    Classification = 0,
    /// Error and target sums.
    Regression = 1,
}

/// One accumulation over `batch` samples of `features` outputs.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricParams {
    /// Which family.
    pub kind: MetricKind,
    /// Samples.
    pub batch: u32,
    /// Outputs a sample.
    pub features: u32,
    /// 1 when targets are class labels (one a sample, stored as `f32`); 0 when they
    /// are rows of `features` values.
    pub sparse: u32,
    /// `k` of the top-k count (classification).
    pub top_k: u32,
    /// The decision threshold of a single output, in the output's own units (0 for
    /// logits, 0.5 for probabilities).
    pub threshold: f32,
}

/// Regression accumulator slots (each a sum and its compensation).
pub mod regression {
    /// `sum |y_pred - y|`.
    pub const ABS_ERROR: usize = 0;
    /// `sum (y_pred - y)^2`.
    pub const SQUARED_ERROR: usize = 2;
    /// `sum y`.
    pub const TARGET: usize = 4;
    /// `sum y^2`.
    pub const TARGET_SQUARED: usize = 6;
    /// The number of values.
    pub const COUNT: usize = 8;
    /// The accumulator's length.
    pub const LEN: usize = 10;
}

impl MetricParams {
    /// The number of classes the confusion matrix has (2 for a single output).
    pub fn classes(&self) -> usize {
        if self.features == 1 {
            2
        } else {
            self.features as usize
        }
    }

    /// The accumulator's length in `f32` values.
    pub fn accumulator_len(&self) -> usize {
        match self.kind {
            MetricKind::Classification => self.classes() * self.classes() + 2,
            MetricKind::Regression => regression::LEN,
        }
    }

    /// Target values the op reads.
    pub fn target_len(&self) -> usize {
        if self.sparse != 0 {
            self.batch as usize
        } else {
            self.batch as usize * self.features as usize
        }
    }
}

/// The predicted class of a row of outputs: the index of the largest value, the first
/// on ties. Every backend's classification metrics follow this rule.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// The metric-accumulation op.
pub trait MetricKernel: Storage {
    /// Adds the batch's counts or sums to `acc` ([`MetricParams::accumulator_len`]
    /// values; zero it with [`Storage::fill`] to start a window).
    fn metric_accumulate(
        &self,
        p: &MetricParams,
        output: &Self::Buffer,
        target: &Self::Buffer,
        acc: &mut Self::Buffer,
    ) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;

    fn run<B: MetricKernel>(
        backend: &B,
        p: &MetricParams,
        out: &[f32],
        target: &[f32],
    ) -> Vec<f32> {
        let o = backend.alloc_from(out).unwrap();
        let t = backend.alloc_from(target).unwrap();
        let mut acc = backend.alloc(p.accumulator_len()).unwrap();
        backend.metric_accumulate(p, &o, &t, &mut acc).unwrap();
        backend.metric_accumulate(p, &o, &t, &mut acc).unwrap();
        backend.to_host(&acc, p.accumulator_len()).unwrap()
    }

    fn check<B: MetricKernel>(backend: &B) {
        // Three classes, labels 0, 2, 1, 2; predictions 0, 1, 1, 2 (argmax).
        let p = MetricParams {
            kind: MetricKind::Classification,
            batch: 4,
            features: 3,
            sparse: 1,
            top_k: 2,
            threshold: 0.5,
        };
        let out = [0.7, 0.2, 0.1, 0.1, 0.5, 0.4, 0.2, 0.6, 0.2, 0.1, 0.3, 0.6];
        let acc = run(backend, &p, &out, &[0.0, 2.0, 1.0, 2.0]);
        let mut confusion = [0.0; 9];
        for (truth, pred) in [(0, 0), (2, 1), (1, 1), (2, 2)] {
            confusion[truth * 3 + pred] += 2.0;
        }
        assert_eq!(&acc[..9], &confusion);
        assert_eq!(acc[9], 8.0, "every label is in its sample's top 2");
        assert_eq!(acc[10], 8.0);
        // One-hot rows give the same matrix.
        let one_hot = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let dense = run(
            backend,
            &MetricParams {
                sparse: 0,
                top_k: 1,
                ..p
            },
            &out,
            &one_hot,
        );
        assert_eq!(&dense[..9], &confusion);
        assert_eq!(dense[9], 6.0, "top-1 hits are the diagonal");
        // A single output with a threshold: a 2 x 2 matrix.
        let binary = MetricParams {
            features: 1,
            sparse: 0,
            top_k: 1,
            ..p
        };
        let acc = run(
            backend,
            &binary,
            &[0.9, 0.2, 0.6, 0.4],
            &[1.0, 0.0, 0.0, 1.0],
        );
        assert_eq!(&acc[..4], &[2.0, 2.0, 2.0, 2.0]);
        // Regression sums.
        let reg = MetricParams {
            kind: MetricKind::Regression,
            batch: 2,
            features: 2,
            sparse: 0,
            top_k: 0,
            threshold: 0.0,
        };
        let acc = run(backend, &reg, &[1.0, 2.0, 3.0, 4.0], &[1.5, 2.0, 1.0, 5.0]);
        assert_eq!(acc[regression::ABS_ERROR], 2.0 * 3.5);
        assert_eq!(acc[regression::SQUARED_ERROR], 2.0 * 5.25);
        assert_eq!(acc[regression::TARGET], 2.0 * 9.5);
        assert_eq!(acc[regression::TARGET_SQUARED], 2.0 * 32.25);
        assert_eq!(acc[regression::COUNT], 8.0);
        // A label outside the classes: an error from the call on the CPU, from the
        // next check on the GPU, naming the first bad sample.
        let o = backend.alloc_from(&out).unwrap();
        let t = backend.alloc_from(&[0.0, 3.0, 1.0, -1.0]).unwrap();
        let mut acc = backend.alloc(p.accumulator_len()).unwrap();
        let err = backend
            .metric_accumulate(&p, &o, &t, &mut acc)
            .and(backend.check_errors())
            .unwrap_err();
        assert!(
            matches!(
                err,
                crate::Error::InvalidTarget {
                    index: 1,
                    value: 3.0,
                    classes: 3,
                    ..
                }
            ),
            "{err}"
        );
        backend.check_errors().unwrap();
    }

    #[test]
    fn accumulates_confusion_top_k_and_regression_sums_on_cpu() {
        check(&Cpu::with_threads(1).unwrap());
    }

    #[test]
    fn compensated_sums_keep_small_additions() {
        let cpu = Cpu::with_threads(1).unwrap();
        let reg = MetricParams {
            kind: MetricKind::Regression,
            batch: 1,
            features: 1,
            sparse: 0,
            top_k: 0,
            threshold: 0.0,
        };
        let mut acc = cpu.alloc(regression::LEN).unwrap();
        let (big, small) = (
            cpu.alloc_from(&[1.0e4]).unwrap(),
            cpu.alloc_from(&[1.0e-4]).unwrap(),
        );
        let zero = cpu.alloc_from(&[0.0]).unwrap();
        cpu.metric_accumulate(&reg, &zero, &big, &mut acc).unwrap();
        for _ in 0..10_000 {
            cpu.metric_accumulate(&reg, &zero, &small, &mut acc)
                .unwrap();
        }
        let acc = cpu.to_host(&acc, regression::LEN).unwrap();
        let total = f64::from(acc[regression::TARGET]) - f64::from(acc[regression::TARGET + 1]);
        assert!((total - 10_001.0).abs() < 2e-3, "{total}");
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn accumulates_confusion_top_k_and_regression_sums_on_cuda() {
        if let Some(gpu) = crate::cuda::test_device() {
            check(&gpu);
        }
    }

    /// The GPU against the CPU on random batches: counts exactly, sums to rounding.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_matches_cpu() {
        use crate::cuda::parity::{assert_close, random};
        let Some(gpu) = crate::cuda::test_device() else {
            return;
        };
        let cpu = Cpu::with_threads(1).unwrap();
        for (batch, features) in [(1, 1), (64, 1), (64, 10), (1000, 7)] {
            let out = random(batch * features, 8, 1.0);
            let labels: Vec<f32> = (0..batch).map(|i| ((i * 5) % features) as f32).collect();
            for (sparse, top_k) in [(1, 1), (1, 3), (0, 2)] {
                let p = MetricParams {
                    kind: MetricKind::Classification,
                    batch: batch as u32,
                    features: features as u32,
                    sparse,
                    top_k,
                    threshold: 0.1,
                };
                let target = if sparse == 1 {
                    labels.clone()
                } else {
                    random(batch * features, 9, 1.0)
                };
                let what = format!("classification {batch}x{features} sparse {sparse}");
                assert_eq!(
                    run(&cpu, &p, &out, &target),
                    run(&gpu, &p, &out, &target),
                    "{what}"
                );
            }
            let reg = MetricParams {
                kind: MetricKind::Regression,
                batch: batch as u32,
                features: features as u32,
                sparse: 0,
                top_k: 0,
                threshold: 0.0,
            };
            let target = random(batch * features, 10, 3.0);
            let (c, g) = (
                run(&cpu, &reg, &out, &target),
                run(&gpu, &reg, &out, &target),
            );
            for slot in [
                regression::ABS_ERROR,
                regression::SQUARED_ERROR,
                regression::TARGET,
                regression::TARGET_SQUARED,
                regression::COUNT,
            ] {
                assert_close(
                    &format!("regression slot {slot}"),
                    &c[slot..=slot],
                    &g[slot..=slot],
                    1e-5,
                    1e-4,
                );
            }
        }
    }
}
