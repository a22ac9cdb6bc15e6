//! Preprocessing: scaling (`x / 255`), normalisation per channel with a given or
//! fitted mean and std, feature standardisation, one-hot encoding.
//!
//! A [`Pipeline`] is a list of affine steps; it compiles to one multiply-add per
//! element ([`Affine`]), which the batcher applies while it converts each batch to
//! `f32`, so images stay bytes in memory. [`InMemory::to_f32`] applies it eagerly.
//!
//! Statistics are fitted on the training split only, then the same pipeline is
//! applied to the validation and test splits:
//!
//! ```
//! use kiln_data::{Pipeline, Stats};
//! # let (train, test) = kiln_data::mnist::embedded()?;
//! let stats = Stats::per_channel(&train)?; // raw 0..255 values
//! let prep = Pipeline::new().normalize(stats.mean, stats.std);
//! let test = test.to_f32(&prep)?; // the training statistics, applied to the test set
//! # Ok::<(), kiln_data::Error>(())
//! ```

use crate::dataset::{Dataset, InMemory, Input, Inputs, Targets};
use crate::error::{Error, Result};

/// One affine preprocessing step.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `x * factor` (`1 / 255` to bring bytes to `[0, 1]`).
    Scale(f32),
    /// `(x - mean[i]) / std[i]`, where `i` cycles over the means: one per channel of
    /// an HWC image, or one per feature.
    Normalize {
        /// The means.
        mean: Vec<f32>,
        /// The standard deviations (positive).
        std: Vec<f32>,
    },
}

/// The preprocessing of each sample: affine steps applied in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pipeline {
    steps: Vec<Step>,
}

impl Pipeline {
    /// The identity.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same pipeline, then `x * factor`.
    pub fn scale(mut self, factor: f32) -> Self {
        self.steps.push(Step::Scale(factor));
        self
    }

    /// The same pipeline, then `(x - mean) / std`, per channel (as many values as the
    /// last dimension of the sample) or per element of the sample.
    pub fn normalize(mut self, mean: Vec<f32>, std: Vec<f32>) -> Self {
        self.steps.push(Step::Normalize { mean, std });
        self
    }

    /// The same pipeline, then standardisation with fitted statistics.
    pub fn standardize(self, stats: &Stats) -> Self {
        self.normalize(stats.mean.clone(), stats.std.clone())
    }

    /// The steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The pipeline as one multiply-add per element of a sample of `shape`.
    /// Normalisation takes one mean and std per channel (the last dimension) or one
    /// per element.
    pub fn compile(&self, shape: &[usize]) -> Result<Affine> {
        let sample_len: usize = shape.iter().product();
        let channels = shape.last().copied().unwrap_or(1);
        let mut mul = vec![1.0f32; sample_len];
        let mut add = vec![0.0f32; sample_len];
        for step in &self.steps {
            match step {
                Step::Scale(f) => {
                    if !f.is_finite() {
                        return Err(Error::Config(format!("scale factor {f} is not finite")));
                    }
                    for (m, a) in mul.iter_mut().zip(&mut add) {
                        *m *= f;
                        *a *= f;
                    }
                }
                Step::Normalize { mean, std } => {
                    let n = mean.len();
                    if n != std.len() || (n != channels && n != sample_len) {
                        return Err(Error::Config(format!(
                            "normalisation with {} means and {} stds does not fit samples of shape {shape:?}: give one per channel ({channels}) or per element ({sample_len})",
                            mean.len(),
                            std.len()
                        )));
                    }
                    if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                        return Err(Error::Config(format!("std {s} is not a positive number")));
                    }
                    if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
                        return Err(Error::Config(format!("mean {m} is not finite")));
                    }
                    for (k, (m, a)) in mul.iter_mut().zip(&mut add).enumerate() {
                        let (mu, sd) = (mean[k % n], std[k % n]);
                        *m /= sd;
                        *a = (*a - mu) / sd;
                    }
                }
            }
        }
        Ok(Affine { mul, add })
    }
}

/// A compiled pipeline: element `k` of a sample becomes `x * mul[k] + add[k]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Affine {
    mul: Vec<f32>,
    add: Vec<f32>,
}

impl Affine {
    /// The identity for samples of `sample_len`.
    pub fn identity(sample_len: usize) -> Self {
        Self {
            mul: vec![1.0; sample_len],
            add: vec![0.0; sample_len],
        }
    }

    /// The multipliers.
    pub fn mul(&self) -> &[f32] {
        &self.mul
    }

    /// The offsets.
    pub fn add(&self) -> &[f32] {
        &self.add
    }

    /// Writes one preprocessed sample.
    pub fn apply<T: Element>(&self, src: &[T], dst: &mut [f32]) {
        for (((d, &s), &m), &a) in dst.iter_mut().zip(src).zip(&self.mul).zip(&self.add) {
            *d = s.to_f32() * m + a;
        }
    }
}

/// An input element type the batcher converts to `f32`.
pub trait Element: Copy + Send + Sync + 'static {
    /// The value as `f32`.
    fn to_f32(self) -> f32;
}

impl Element for u8 {
    #[inline]
    fn to_f32(self) -> f32 {
        f32::from(self)
    }
}

impl Element for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}

/// Means and (population) standard deviations, per channel or per feature.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// The means.
    pub mean: Vec<f32>,
    /// The standard deviations; a constant column gets 1, so it maps to 0.
    pub std: Vec<f32>,
}

impl Stats {
    /// Statistics of each channel (the last dimension of the shape) over every
    /// sample and pixel, in the data's own units (0..255 for bytes).
    pub fn per_channel(data: &impl Dataset) -> Result<Self> {
        let channels = data.shape().last().copied().unwrap_or(1);
        fit(data, channels)
    }

    /// Statistics of each element of the sample (each feature) over the samples.
    pub fn per_feature(data: &impl Dataset) -> Result<Self> {
        fit(data, data.sample_len())
    }

    /// The statistics of `(x * factor)`: the same data after a scaling.
    pub fn scaled(&self, factor: f32) -> Self {
        Self {
            mean: self.mean.iter().map(|m| m * factor).collect(),
            std: self.std.iter().map(|s| s * factor.abs()).collect(),
        }
    }
}

fn fit(data: &impl Dataset, groups: usize) -> Result<Stats> {
    if data.is_empty() {
        return Err(Error::Config(
            "cannot fit statistics on an empty data set".into(),
        ));
    }
    let mut sum = vec![0f64; groups];
    let mut sq = vec![0f64; groups];
    let s = data.sample_len();
    // Per-sample partial sums keep the f64 accumulation exact enough and fast.
    let mut part = vec![0f64; groups];
    let mut part_sq = vec![0f64; groups];
    for i in 0..data.len() {
        part.iter_mut().for_each(|v| *v = 0.0);
        part_sq.iter_mut().for_each(|v| *v = 0.0);
        match data.get(i)?.input {
            Input::U8(v) => accumulate(&v, groups, &mut part, &mut part_sq),
            Input::F32(v) => accumulate(&v, groups, &mut part, &mut part_sq),
        }
        for g in 0..groups {
            sum[g] += part[g];
            sq[g] += part_sq[g];
        }
    }
    let count = (data.len() * (s / groups)) as f64;
    let mean: Vec<f64> = sum.iter().map(|v| v / count).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| {
            let var = (q / count - m * m).max(0.0);
            let sd = var.sqrt() as f32;
            if sd > 0.0 { sd } else { 1.0 }
        })
        .collect();
    Ok(Stats {
        mean: mean.iter().map(|&m| m as f32).collect(),
        std,
    })
}

fn accumulate<T: Element>(v: &[T], groups: usize, sum: &mut [f64], sq: &mut [f64]) {
    for px in v.chunks_exact(groups) {
        for ((x, s), q) in px.iter().zip(sum.iter_mut()).zip(sq.iter_mut()) {
            let x = f64::from(x.to_f32());
            *s += x;
            *q += x * x;
        }
    }
}

/// One-hot rows: `classes` values per label, 1 at the label and 0 elsewhere.
pub fn one_hot(labels: &[u32], classes: usize) -> Result<Vec<f32>> {
    let mut out = vec![0.0; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        if l as usize >= classes {
            return Err(Error::Config(format!(
                "label {l} of sample {i} is outside the {classes} classes"
            )));
        }
        out[i * classes + l as usize] = 1.0;
    }
    Ok(out)
}

impl InMemory {
    /// The same data set with `f32` inputs after `pipeline` (`x / 255` is
    /// `Pipeline::new().scale(1.0 / 255.0)`).
    pub fn to_f32(&self, pipeline: &Pipeline) -> Result<Self> {
        let affine = pipeline.compile(self.shape())?;
        let s = self.sample_len();
        let mut out = vec![0f32; self.inputs().len()];
        match self.inputs() {
            Inputs::U8(v) => {
                for (src, dst) in v.chunks_exact(s).zip(out.chunks_exact_mut(s)) {
                    affine.apply(src, dst);
                }
            }
            Inputs::F32(v) => {
                for (src, dst) in v.chunks_exact(s).zip(out.chunks_exact_mut(s)) {
                    affine.apply(src, dst);
                }
            }
        }
        self.with_inputs(Inputs::F32(out))
    }

    /// The same data set with one-hot rows as targets.
    pub fn one_hot(&self) -> Result<Self> {
        match self.targets() {
            Targets::Classes { labels, classes } => self.with_targets(Targets::Real {
                values: one_hot(labels, *classes)?,
                width: *classes,
            }),
            Targets::Real { .. } => Err(Error::Config(
                "one-hot encoding needs class labels, not real-valued targets".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images() -> InMemory {
        // Two 1x2 images with 2 channels: channel 0 holds 0, 2, 4, 6; channel 1 holds 10 everywhere.
        InMemory::new(
            vec![1, 2, 2],
            Inputs::U8(vec![0, 10, 2, 10, 4, 10, 6, 10]),
            Targets::Classes {
                labels: vec![1, 0],
                classes: 2,
            },
        )
        .unwrap()
    }

    #[test]
    fn pipeline_compiles_to_one_multiply_add() {
        let p = Pipeline::new()
            .scale(0.5)
            .normalize(vec![1.0, 2.0], vec![2.0, 4.0]);
        let a = p.compile(&[2, 2]).unwrap();
        let mut out = [0f32; 4];
        a.apply(&[4u8, 8, 6, 12], &mut out);
        // (4 * 0.5 - 1) / 2, (8 * 0.5 - 2) / 4, ...
        assert_eq!(out, [0.5, 0.5, 1.0, 1.0]);
        let bad = |p: Pipeline, shape: &[usize]| assert!(p.compile(shape).is_err(), "{p:?}");
        bad(
            Pipeline::new().normalize(vec![0.0; 3], vec![1.0; 3]),
            &[2, 2],
        );
        bad(
            Pipeline::new().normalize(vec![0.0; 2], vec![1.0; 2]),
            &[2, 3],
        );
        bad(Pipeline::new().normalize(vec![0.0], vec![0.0]), &[4, 1]);
        assert!(
            Pipeline::new()
                .normalize(vec![0.0; 6], vec![1.0; 6])
                .compile(&[2, 3])
                .is_ok()
        );
        assert!(Pipeline::new().scale(f32::NAN).compile(&[1]).is_err());
    }

    #[test]
    fn stats_per_channel_and_per_feature() {
        let d = images();
        let s = Stats::per_channel(&d).unwrap();
        assert_eq!(s.mean, vec![3.0, 10.0]);
        assert!((s.std[0] - 5f32.sqrt()).abs() < 1e-6);
        assert_eq!(s.std[1], 1.0, "a constant channel gets std 1");
        let f = Stats::per_feature(&d).unwrap();
        assert_eq!(f.mean, vec![2.0, 10.0, 4.0, 10.0]);
        let scaled = s.scaled(0.5);
        assert_eq!(scaled.mean, vec![1.5, 5.0]);
    }

    #[test]
    fn standardized_training_data_has_zero_mean_and_unit_std() {
        let d = images();
        let s = Stats::per_channel(&d).unwrap();
        let z = d.to_f32(&Pipeline::new().standardize(&s)).unwrap();
        let again = Stats::per_channel(&z).unwrap();
        assert!(again.mean.iter().all(|m| m.abs() < 1e-6), "{again:?}");
        assert!((again.std[0] - 1.0).abs() < 1e-5);
    }

    #[test]
    fn one_hot_rows() {
        assert_eq!(
            one_hot(&[2, 0], 3).unwrap(),
            vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
        );
        assert!(one_hot(&[3], 3).is_err());
        let d = images().one_hot().unwrap();
        assert_eq!(
            d.targets(),
            &Targets::Real {
                values: vec![0.0, 1.0, 1.0, 0.0],
                width: 2
            }
        );
        assert!(d.one_hot().is_err());
    }
}
