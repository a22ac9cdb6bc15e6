//! Augmentation of audio samples: a random time shift and gain of the waveform before
//! its features, and SpecAugment's time and frequency masks after (Park et al., 2019,
//! without time warping).
//!
//! Like the image augmentations, a sample's random choices come from the 64 bits that
//! the batcher derives from (seed, epoch, sample index), so they do not depend on the
//! thread that computes them.

use crate::error::{Error, Result};
use crate::rng::{Rng, mix64};

/// Mixed into a sample's bits so that the audio draws are independent of the image
/// augmentations', which read the bits themselves.
const AUDIO_STREAM: u64 = 0x5bd1_e995_a0d3_2c47;

/// The augmentation of audio samples, drawn afresh for every sample of every epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AudioAugment {
    /// Shift the waveform by up to this many samples either way, filling with silence.
    pub max_shift: usize,
    /// Scale the waveform by a gain drawn uniformly in `-max_gain_db..=max_gain_db`
    /// decibels.
    pub max_gain_db: f32,
    /// Time masks per sample.
    pub time_masks: usize,
    /// The widest time mask, in frames (SpecAugment's `T`).
    pub max_time_mask: usize,
    /// Frequency masks per sample.
    pub freq_masks: usize,
    /// The widest frequency mask, in bands (SpecAugment's `F`).
    pub max_freq_mask: usize,
}

impl AudioAugment {
    /// No augmentation.
    pub fn none() -> Self {
        Self::default()
    }

    /// The same augmentation with random shifts of up to `samples` either way.
    pub fn shift(mut self, samples: usize) -> Self {
        self.max_shift = samples;
        self
    }

    /// The same augmentation with random gains of up to `db` decibels either way.
    pub fn gain(mut self, db: f32) -> Self {
        self.max_gain_db = db;
        self
    }

    /// The same augmentation with `count` time masks each up to `max_frames` wide:
    /// a mask's width is drawn in `0..=max_frames`, then its start uniformly where it
    /// fits, and the frames it covers are set to the spectrogram's mean.
    pub fn time_mask(mut self, count: usize, max_frames: usize) -> Self {
        self.time_masks = count;
        self.max_time_mask = max_frames;
        self
    }

    /// The same augmentation with `count` frequency masks each up to `max_bands`
    /// wide, drawn like the time masks.
    pub fn freq_mask(mut self, count: usize, max_bands: usize) -> Self {
        self.freq_masks = count;
        self.max_freq_mask = max_bands;
        self
    }

    /// Whether this changes nothing.
    pub fn is_none(&self) -> bool {
        self.max_shift == 0
            && self.max_gain_db == 0.0
            && (self.time_masks == 0 || self.max_time_mask == 0)
            && (self.freq_masks == 0 || self.max_freq_mask == 0)
    }

    /// Checks the augmentation against clips of `samples` samples whose features are
    /// `[frames, bands]`.
    pub(crate) fn check(&self, samples: usize, frames: usize, bands: usize) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("audio augmentation: {m}")));
        if !(self.max_gain_db.is_finite() && self.max_gain_db >= 0.0) {
            return bad(format!(
                "the gain must be a finite, non-negative number of decibels, got {}",
                self.max_gain_db
            ));
        }
        if self.max_shift >= samples {
            return bad(format!(
                "a shift of up to {} samples leaves nothing of clips of {samples}",
                self.max_shift
            ));
        }
        if self.max_time_mask > frames || self.max_freq_mask > bands {
            return bad(format!(
                "masks of up to {} frames and {} bands do not fit features of {frames} \
                 frames and {bands} bands",
                self.max_time_mask, self.max_freq_mask
            ));
        }
        Ok(())
    }

    /// The generator of a sample's draws.
    pub(crate) fn rng(bits: u64) -> Rng {
        Rng::new(mix64(bits ^ AUDIO_STREAM))
    }

    /// `clip` shifted and scaled by the draws of `rng`, into `out` (same length).
    pub(crate) fn waveform(&self, clip: &[f32], out: &mut [f32], rng: &mut Rng) {
        let shift = if self.max_shift > 0 {
            rng.below(2 * self.max_shift + 1) as isize - self.max_shift as isize
        } else {
            0
        };
        let gain = if self.max_gain_db > 0.0 {
            let u = (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32;
            10f32.powf((2.0 * u - 1.0) * self.max_gain_db / 20.0)
        } else {
            1.0
        };
        // out[i] = clip[i - shift]: a positive shift delays the sound.
        for (i, o) in out.iter_mut().enumerate() {
            let s = i as isize - shift;
            *o = if s >= 0 && (s as usize) < clip.len() {
                clip[s as usize] * gain
            } else {
                0.0
            };
        }
    }

    /// Sets the masked frames and bands of `spec` (`[frames, bands]`) to its mean.
    pub(crate) fn mask(&self, spec: &mut [f32], frames: usize, bands: usize, rng: &mut Rng) {
        if spec.is_empty() {
            return;
        }
        let mean = (spec.iter().map(|&v| f64::from(v)).sum::<f64>() / spec.len() as f64) as f32;
        for _ in 0..self.time_masks {
            let (t0, t1) = span(rng, self.max_time_mask, frames);
            spec[t0 * bands..t1 * bands].fill(mean);
        }
        for _ in 0..self.freq_masks {
            let (f0, f1) = span(rng, self.max_freq_mask, bands);
            for row in spec.chunks_exact_mut(bands) {
                row[f0..f1].fill(mean);
            }
        }
    }
}

/// A mask `start..end` of width drawn in `0..=max` placed uniformly in `0..len`.
fn span(rng: &mut Rng, max: usize, len: usize) -> (usize, usize) {
    let width = rng.below(max + 1);
    let start = rng.below(len - width + 1);
    (start, start + width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_and_gains_stay_in_their_bounds_and_cover_them() {
        let aug = AudioAugment::none().shift(3).gain(6.0);
        let clip = vec![1.0f32; 10];
        let (mut shifts, mut gains) = (std::collections::HashSet::new(), Vec::new());
        for bits in 0..500 {
            let mut out = vec![0.0; 10];
            aug.waveform(&clip, &mut out, &mut AudioAugment::rng(bits));
            // A delay leaves silence at the start, an advance at the end.
            let lead = out.iter().take_while(|&&v| v == 0.0).count();
            let trail = out.iter().rev().take_while(|&&v| v == 0.0).count();
            let shift = lead as isize - trail as isize;
            let gain = out[lead];
            assert!((-3..=3).contains(&shift), "{shift}");
            let db = 20.0 * gain.log10();
            assert!((-6.0..=6.0).contains(&db), "{db}");
            shifts.insert(shift);
            gains.push(db);
        }
        assert_eq!(shifts.len(), 7, "every shift occurs: {shifts:?}");
        let (lo, hi) = gains
            .iter()
            .fold((0f32, 0f32), |(l, h), &g| (l.min(g), h.max(g)));
        assert!(lo < -5.5 && hi > 5.5, "{lo} {hi}");
    }

    #[test]
    fn masks_cover_whole_frames_and_bands_with_the_mean() {
        let aug = AudioAugment::none().time_mask(1, 4).freq_mask(1, 3);
        let (frames, bands) = (10, 6);
        let mut widths = std::collections::HashSet::new();
        for bits in 0..300 {
            let mut spec: Vec<f32> = (0..60).map(|v| v as f32).collect();
            aug.mask(&mut spec, frames, bands, &mut AudioAugment::rng(bits));
            let mean = 29.5;
            let masked_rows = (0..frames)
                .filter(|t| spec[t * bands..(t + 1) * bands].iter().all(|&v| v == mean))
                .count();
            let masked_cols = (0..bands)
                .filter(|&f| (0..frames).all(|t| spec[t * bands + f] == mean))
                .count();
            assert!(
                masked_rows <= 4 && masked_cols <= 3,
                "{masked_rows} {masked_cols}"
            );
            // Every value is either the original or the mean.
            for (i, &v) in spec.iter().enumerate() {
                assert!(v == i as f32 || v == mean);
            }
            widths.insert((masked_rows, masked_cols));
        }
        assert!(
            widths.contains(&(4, 3)) && widths.contains(&(0, 0)),
            "{widths:?}"
        );
    }

    #[test]
    fn draws_depend_only_on_the_bits() {
        let aug = AudioAugment::none()
            .shift(100)
            .gain(3.0)
            .time_mask(2, 5)
            .freq_mask(2, 4);
        let clip: Vec<f32> = (0..1000).map(|v| (v as f32 * 0.1).sin()).collect();
        let run = |bits| {
            let mut out = vec![0.0; 1000];
            let mut rng = AudioAugment::rng(bits);
            aug.waveform(&clip, &mut out, &mut rng);
            aug.mask(&mut out, 100, 10, &mut rng);
            out
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn impossible_settings_are_refused() {
        assert!(AudioAugment::none().shift(100).check(100, 10, 10).is_err());
        assert!(
            AudioAugment::none()
                .gain(f32::NAN)
                .check(100, 10, 10)
                .is_err()
        );
        assert!(
            AudioAugment::none()
                .time_mask(1, 11)
                .check(100, 10, 10)
                .is_err()
        );
        assert!(
            AudioAugment::none()
                .freq_mask(1, 11)
                .check(100, 10, 10)
                .is_err()
        );
        assert!(
            AudioAugment::none()
                .time_mask(2, 10)
                .freq_mask(2, 10)
                .check(100, 10, 10)
                .is_ok()
        );
    }
}
