//! [`Spectrograms`]: a data set of clips whose samples are their features, computed
//! when the batcher asks for them, that is on its background threads, after the clip's
//! random shift and gain and before SpecAugment's masks.

use std::sync::Arc;

use super::augment::AudioAugment;
use super::clips::Waveforms;
use super::features::{FeatureOptions, Features};
use crate::dataset::{
    Dataset, Dtype, InMemory, Input, Inputs, Origin, Sample, Target, TargetKind, Targets,
};
use crate::error::{Error, Result};
use crate::read;

/// Clips seen as their features, `[frames, bands, 1]` each: a one-channel image with
/// time down the rows, for a CNN; or, after [`Spectrograms::sequences`], `[frames,
/// bands]`: a sequence of `bands`-wide steps, for a recurrent layer or a `Conv1d`.
///
/// [`Dataset::get`] gives a clip's plain features; [`Dataset::get_seeded`], which the
/// batcher calls, applies the augmentation drawn from the sample's bits.
#[derive(Clone, Debug)]
pub struct Spectrograms {
    clips: Arc<Waveforms>,
    features: Features,
    augment: AudioAugment,
    shape: [usize; 3],
    /// Whether samples are `[frames, bands]` sequences rather than images.
    sequences: bool,
}

impl Spectrograms {
    /// The features `options` describes of `clips`, whose rate must be the options'.
    pub fn new(clips: impl Into<Arc<Waveforms>>, options: FeatureOptions) -> Result<Self> {
        let clips = clips.into();
        if clips.sample_rate() != options.sample_rate {
            return Err(Error::Config(format!(
                "features for {} Hz asked of clips at {} Hz",
                options.sample_rate,
                clips.sample_rate()
            )));
        }
        let features = Features::new(options)?;
        let [frames, bands] = features.shape(clips.clip_len());
        if frames == 0 {
            return Err(Error::Config(format!(
                "clips of {} samples are shorter than one frame of {}",
                clips.clip_len(),
                features.options().n_fft
            )));
        }
        Ok(Self {
            clips,
            features,
            augment: AudioAugment::none(),
            shape: [frames, bands, 1],
            sequences: false,
        })
    }

    /// The same data set with each sample a `[frames, bands]` sequence (the same
    /// values, without the image's channel axis), for models that read time steps:
    /// standardising it with [`Stats::per_channel`](crate::Stats::per_channel) then
    /// standardises each band on its own.
    pub fn sequences(mut self) -> Self {
        self.sequences = true;
        self
    }

    /// The same data set augmenting each sample the batcher draws.
    pub fn augment(mut self, augment: AudioAugment) -> Result<Self> {
        let [frames, bands, _] = self.shape;
        augment.check(self.clips.clip_len(), frames, bands)?;
        self.augment = augment;
        Ok(self)
    }

    /// The clips.
    pub fn clips(&self) -> &Waveforms {
        &self.clips
    }

    /// The feature computation.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The features of clip `index`, augmented with `bits` when given.
    pub fn compute(&self, index: usize, bits: Option<u64>) -> Result<Vec<f32>> {
        let clip = self.clips.clip(index)?;
        let [frames, bands, _] = self.shape;
        match bits {
            Some(bits) if !self.augment.is_none() => {
                let mut rng = AudioAugment::rng(bits);
                let mut moved = vec![0.0; clip.len()];
                self.augment.waveform(clip, &mut moved, &mut rng);
                let mut out = self.features.compute(&moved);
                self.augment.mask(&mut out, frames, bands, &mut rng);
                Ok(out)
            }
            _ => Ok(self.features.compute(clip)),
        }
    }

    /// Every clip's plain features, computed once on every core, as an in-memory data
    /// set: what evaluation reads every epoch without augmentation.
    pub fn to_memory(&self) -> Result<InMemory> {
        let indices: Vec<usize> = (0..self.len()).collect();
        let all = read::parallel_map(&indices, read::cores(), |&i| self.compute(i, None))?;
        Ok(InMemory::new(
            self.shape().to_vec(),
            Inputs::F32(all.concat()),
            Targets::Classes {
                labels: self.clips.labels().to_vec(),
                classes: self.clips.class_names().len(),
            },
        )?
        .with_class_names(self.clips.class_names().to_vec()))
    }
}

impl Dataset for Spectrograms {
    fn len(&self) -> usize {
        self.clips.len()
    }
    fn shape(&self) -> &[usize] {
        if self.sequences {
            &self.shape[..2]
        } else {
            &self.shape
        }
    }
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn target_kind(&self) -> TargetKind {
        TargetKind::Classes(self.clips.class_names().len())
    }
    fn get(&self, index: usize) -> Result<Sample<'_>> {
        self.sample(index, None)
    }
    fn get_seeded(&self, index: usize, bits: u64) -> Result<Sample<'_>> {
        self.sample(index, Some(bits))
    }
    fn origin(&self, index: usize) -> Option<Origin> {
        self.clips.origin(index)
    }
}

impl Spectrograms {
    fn sample(&self, index: usize, bits: Option<u64>) -> Result<Sample<'_>> {
        Ok(Sample {
            input: Input::F32(self.compute(index, bits)?.into()),
            target: Target::Class(self.clips.labels()[index]),
        })
    }
}
