//! Resampling to a common rate (band-limited interpolation with a windowed sinc) and
//! fitting a clip to a fixed length.

use crate::error::{Error, Result};

/// Zero crossings of the sinc on each side of an output sample: the filter's length,
/// which trades its transition band against the cost.
const HALF_TAPS: f64 = 16.0;

/// `samples` at `from` Hz resampled to `to` Hz.
///
/// Each output sample is a sum of input samples weighted by a Hann-windowed sinc whose
/// cutoff is the lower of the two Nyquist frequencies (so downsampling does not alias),
/// `HALF_TAPS` zero crossings to each side. Equal rates return the samples unchanged.
/// A rate of 0, or a ratio above 1024 either way, is an error.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == 0 || to == 0 || from / to > 1024 || to / from > 1024 {
        return Err(Error::Config(format!(
            "cannot resample from {from} Hz to {to} Hz: both rates must be positive and \
             within a factor of 1024 of each other"
        )));
    }
    if from == to {
        return Ok(samples.to_vec());
    }
    let ratio = f64::from(to) / f64::from(from);
    // The cutoff in input samples' units: 1 keeps everything below the input's
    // Nyquist frequency; downsampling lowers it to the output's.
    let cutoff = ratio.min(1.0);
    let half = HALF_TAPS / cutoff;
    let out_len = (samples.len() as f64 * ratio).round() as usize;
    let n = samples.len() as i64;
    let mut out = Vec::with_capacity(out_len);
    for k in 0..out_len {
        let t = k as f64 / ratio;
        let lo = ((t - half).ceil() as i64).max(0);
        let hi = ((t + half).floor() as i64).min(n - 1);
        let mut acc = 0.0f64;
        for i in lo..=hi {
            let x = i as f64 - t;
            let window = 0.5 + 0.5 * (std::f64::consts::PI * x / half).cos();
            acc += f64::from(samples[i as usize]) * cutoff * sinc(cutoff * x) * window;
        }
        out.push(acc as f32);
    }
    Ok(out)
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Where a clip sits in its fixed-length window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Align {
    /// At the start: padding goes after the clip, cropping keeps its beginning.
    Start,
    /// In the middle: padding is shared by both ends, cropping keeps its middle.
    #[default]
    Center,
}

/// `samples` padded with zeros or cropped to exactly `len` samples.
pub fn fit_length(samples: &[f32], len: usize, align: Align) -> Vec<f32> {
    let mut out = vec![0.0; len];
    let n = samples.len();
    let (src, dst) = match align {
        Align::Start => (0, 0),
        Align::Center if n >= len => ((n - len) / 2, 0),
        Align::Center => (0, (len - n) / 2),
    };
    let take = n.min(len);
    out[dst..dst + take].copy_from_slice(&samples[src..src + take]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32)
            .collect()
    }

    /// The largest error away from the ends, where the filter lacks input.
    fn interior_error(a: &[f32], b: &[f32], margin: usize) -> f32 {
        a[margin..a.len() - margin]
            .iter()
            .zip(&b[margin..])
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn a_tone_keeps_its_frequency() {
        // 440 Hz, well inside both bands: resampled, it is the same tone at the new rate.
        for (from, to) in [(8000, 16000), (16000, 8000), (44100, 16000), (8000, 11025)] {
            let out = resample(&tone(440.0, from, 4000), from, to).unwrap();
            let expected = tone(440.0, to, out.len());
            assert_eq!(
                out.len(),
                (4000.0 * f64::from(to) / f64::from(from)).round() as usize
            );
            let err = interior_error(&out, &expected, 200);
            assert!(err < 2e-3, "{from} -> {to}: {err}");
        }
    }

    #[test]
    fn downsampling_removes_what_the_new_rate_cannot_hold() {
        // 6 kHz at 16 kHz, taken to 8 kHz (Nyquist 4 kHz): it must vanish, not alias to 2 kHz.
        let out = resample(&tone(6000.0, 16000, 8000), 16000, 8000).unwrap();
        let peak = out[200..out.len() - 200]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak < 0.02, "{peak}");
    }

    #[test]
    fn rates_that_cannot_be_resampled_are_errors() {
        for (from, to) in [(0, 8000), (8000, 0), (8_000_000, 10)] {
            let e = resample(&[0.0; 4], from, to).unwrap_err().to_string();
            assert!(e.contains(&format!("{from} Hz")), "{e}");
        }
        assert_eq!(resample(&[1.0, 2.0], 8000, 8000).unwrap(), vec![1.0, 2.0]);
    }

    #[test]
    fn fitting_pads_and_crops() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            fit_length(&s, 6, Align::Start),
            vec![1.0, 2.0, 3.0, 4.0, 0.0, 0.0]
        );
        assert_eq!(
            fit_length(&s, 6, Align::Center),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 0.0]
        );
        assert_eq!(fit_length(&s, 2, Align::Start), vec![1.0, 2.0]);
        assert_eq!(fit_length(&s, 2, Align::Center), vec![2.0, 3.0]);
    }
}
