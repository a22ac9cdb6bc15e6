//! Mel scales and the triangular mel filterbank, as librosa builds them
//! (`librosa.filters.mel`): Slaney's scale (linear below 1 kHz, logarithmic above) or
//! HTK's (`2595 log10(1 + f / 700)`), with or without Slaney's area normalisation.

/// How frequencies map to mels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MelScale {
    /// Slaney's Auditory Toolbox scale: linear to 1 kHz, then logarithmic (librosa's
    /// default).
    #[default]
    Slaney,
    /// The HTK scale, `2595 log10(1 + f / 700)` (torchaudio's default).
    Htk,
}

impl MelScale {
    /// `hz` in mels.
    pub fn to_mel(self, hz: f64) -> f64 {
        match self {
            MelScale::Htk => 2595.0 * (1.0 + hz / 700.0).log10(),
            MelScale::Slaney => {
                let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
                let min_log_mel = min_log_hz / f_sp;
                let logstep = 6.4f64.ln() / 27.0;
                if hz >= min_log_hz {
                    min_log_mel + (hz / min_log_hz).ln() / logstep
                } else {
                    hz / f_sp
                }
            }
        }
    }

    /// `mel` in Hz.
    pub fn to_hz(self, mel: f64) -> f64 {
        match self {
            MelScale::Htk => 700.0 * (10f64.powf(mel / 2595.0) - 1.0),
            MelScale::Slaney => {
                let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
                let min_log_mel = min_log_hz / f_sp;
                let logstep = 6.4f64.ln() / 27.0;
                if mel >= min_log_mel {
                    min_log_hz * (logstep * (mel - min_log_mel)).exp()
                } else {
                    mel * f_sp
                }
            }
        }
    }
}

/// One band of the filterbank: its weights over the FFT bins `start..start + len`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Band {
    pub start: usize,
    pub weights: Vec<f32>,
}

/// The triangular filters of `n_mels` bands between `f_min` and `f_max` Hz over the
/// `n_fft / 2 + 1` bins of an FFT of `n_fft` points at `sample_rate`; each band keeps
/// only its non-zero span. `slaney_norm` scales each triangle to unit area
/// (`norm="slaney"`).
pub(crate) fn filterbank(
    sample_rate: u32,
    n_fft: usize,
    n_mels: usize,
    f_min: f64,
    f_max: f64,
    scale: MelScale,
    slaney_norm: bool,
) -> Vec<Band> {
    let bins = n_fft / 2 + 1;
    let nyquist = f64::from(sample_rate) / 2.0;
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|i| nyquist * i as f64 / (bins - 1).max(1) as f64)
        .collect();
    let (lo, hi) = (scale.to_mel(f_min), scale.to_mel(f_max));
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| scale.to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    (0..n_mels)
        .map(|m| {
            let (left, centre, right) = (edges[m], edges[m + 1], edges[m + 2]);
            let norm = if slaney_norm {
                2.0 / (right - left)
            } else {
                1.0
            };
            let w: Vec<f32> = fft_freqs
                .iter()
                .map(|&f| {
                    let rising = (f - left) / (centre - left);
                    let falling = (right - f) / (right - centre);
                    (rising.min(falling).max(0.0) * norm) as f32
                })
                .collect();
            let start = w.iter().position(|&v| v > 0.0).unwrap_or(0);
            let end = w.iter().rposition(|&v| v > 0.0).map_or(start, |e| e + 1);
            Band {
                start,
                weights: w[start..end].to_vec(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_invert_and_meet_their_anchors() {
        for scale in [MelScale::Slaney, MelScale::Htk] {
            for hz in [0.0, 100.0, 999.0, 1000.0, 4000.0, 22050.0] {
                let back = scale.to_hz(scale.to_mel(hz));
                assert!((back - hz).abs() < 1e-6 * hz.max(1.0), "{scale:?} {hz}");
            }
        }
        // librosa.hz_to_mel(1000.0) == 15.0; librosa.hz_to_mel(1000.0, htk=True) == 999.985...
        assert!((MelScale::Slaney.to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((MelScale::Htk.to_mel(1000.0) - 999.985_6).abs() < 1e-3);
    }

    #[test]
    fn slaney_normalised_triangles_have_unit_area_in_hz() {
        // Area of each triangle over frequency (bin width times the weights) is 1.
        let bank = filterbank(16000, 1024, 40, 0.0, 8000.0, MelScale::Slaney, true);
        let bin_hz = 8000.0 / 512.0;
        for (m, band) in bank.iter().enumerate().skip(3) {
            let area: f64 = band.weights.iter().map(|&w| f64::from(w) * bin_hz).sum();
            assert!((area - 1.0).abs() < 0.05, "band {m}: {area}");
        }
    }
}
