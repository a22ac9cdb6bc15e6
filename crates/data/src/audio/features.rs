//! Spectral features of a clip: the short-time Fourier transform's power, the log-mel
//! spectrogram and MFCCs, laid out time-major (`[frames, bands]`), the layout that a
//! model reads as a `[frames, bands, 1]` image.
//!
//! The defaults and the arithmetic follow librosa (`melspectrogram`, `power_to_db`,
//! `mfcc`): frames centred on multiples of the hop with the clip zero-padded by half a
//! frame at each end, a periodic window, the power spectrum, mel bands, decibels
//! `10 log10(max(power, 1e-10))` floored `top_db` below the clip's peak, and an
//! orthonormal DCT-II of the decibels for MFCCs. `tests/audio/` holds the librosa
//! script that checks them.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::mel::{Band, MelScale, filterbank};
use crate::error::{Error, Result};

/// The analysis window of each frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Window {
    /// The periodic Hann window (librosa's and torchaudio's default).
    #[default]
    Hann,
    /// The periodic Hamming window.
    Hamming,
    /// No window.
    Rectangular,
}

impl Window {
    /// The `n` coefficients of the periodic window (`scipy.signal.get_window(.., n,
    /// fftbins=True)`).
    pub fn coefficients(self, n: usize) -> Vec<f32> {
        let tau = 2.0 * std::f64::consts::PI;
        (0..n)
            .map(|i| {
                let c = (tau * i as f64 / n as f64).cos();
                (match self {
                    Window::Hann => 0.5 - 0.5 * c,
                    Window::Hamming => 0.54 - 0.46 * c,
                    Window::Rectangular => 1.0,
                }) as f32
            })
            .collect()
    }
}

/// Which feature to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureKind {
    /// The power spectrum, `n_fft / 2 + 1` bins a frame.
    Power,
    /// The log-mel spectrogram in decibels, `n_mels` bands a frame.
    LogMel,
    /// `n` mel-frequency cepstral coefficients a frame.
    Mfcc(usize),
}

/// The settings of a feature: what it is and how frames and bands are cut.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureOptions {
    /// The feature.
    pub kind: FeatureKind,
    /// The clips' sample rate (Hz).
    pub sample_rate: u32,
    /// The frame length, which is also the FFT's size.
    pub n_fft: usize,
    /// Samples between the starts of consecutive frames.
    pub hop: usize,
    /// The analysis window.
    pub window: Window,
    /// Centre frame `t` on sample `t * hop`, zero-padding half a frame at each end
    /// (librosa's `center=True`, the default); otherwise frame `t` starts there.
    pub center: bool,
    /// Mel bands.
    pub n_mels: usize,
    /// The lowest frequency of the mel bands (Hz).
    pub f_min: f64,
    /// The highest frequency of the mel bands (Hz; `None`: the Nyquist frequency).
    pub f_max: Option<f64>,
    /// The mel scale.
    pub mel_scale: MelScale,
    /// Scale each mel triangle to unit area (librosa's `norm="slaney"`, the default).
    pub slaney_norm: bool,
    /// Floor the decibels this far below the clip's peak (`None`: no floor but
    /// 10 log10(1e-10)).
    pub top_db: Option<f32>,
}

impl FeatureOptions {
    /// Log-mel spectrograms with librosa's defaults but for the frame: frames of
    /// `n_fft` samples every `hop`, Hann window, centred, `n_mels` bands from 0 Hz to
    /// the Nyquist frequency on Slaney's scale with Slaney's normalisation, decibels
    /// floored 80 dB below the peak.
    pub fn log_mel(sample_rate: u32, n_fft: usize, hop: usize, n_mels: usize) -> Self {
        Self {
            kind: FeatureKind::LogMel,
            sample_rate,
            n_fft,
            hop,
            window: Window::Hann,
            center: true,
            n_mels,
            f_min: 0.0,
            f_max: None,
            mel_scale: MelScale::Slaney,
            slaney_norm: true,
            top_db: Some(80.0),
        }
    }

    /// The same settings computing `kind` instead.
    pub fn kind(mut self, kind: FeatureKind) -> Self {
        self.kind = kind;
        self
    }

    /// The same settings with another window.
    pub fn window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// The same settings with centred frames or not.
    pub fn center(mut self, on: bool) -> Self {
        self.center = on;
        self
    }

    /// The same settings with mel bands between `f_min` and `f_max` Hz.
    pub fn band(mut self, f_min: f64, f_max: f64) -> Self {
        self.f_min = f_min;
        self.f_max = Some(f_max);
        self
    }

    /// The same settings on another mel scale.
    pub fn mel_scale(mut self, scale: MelScale) -> Self {
        self.mel_scale = scale;
        self
    }

    /// The same settings with or without Slaney's area normalisation.
    pub fn slaney_norm(mut self, on: bool) -> Self {
        self.slaney_norm = on;
        self
    }

    /// The same settings with another floor below the peak (`None`: none).
    pub fn top_db(mut self, top_db: Option<f32>) -> Self {
        self.top_db = top_db;
        self
    }
}

/// A compiled feature: the window, the FFT plan, the filterbank and the DCT, made once
/// and shared by every thread that computes features.
#[derive(Clone)]
pub struct Features {
    options: FeatureOptions,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    bands: Vec<Band>,
    /// `n x n_mels`, row `k` the orthonormal DCT-II basis vector `k` (MFCC only).
    dct: Vec<f32>,
}

impl std::fmt::Debug for Features {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Features")
            .field("options", &self.options)
            .finish()
    }
}

impl Features {
    /// Checks `options` and prepares their computation.
    pub fn new(options: FeatureOptions) -> Result<Self> {
        let o = &options;
        let nyquist = f64::from(o.sample_rate) / 2.0;
        let f_max = o.f_max.unwrap_or(nyquist);
        let bad = |m: String| Err(Error::Config(format!("features: {m}")));
        if o.n_fft < 2 || o.hop == 0 || o.sample_rate == 0 {
            return bad(format!(
                "the frame length must be at least 2 and the hop and sample rate positive, \
                 got n_fft {}, hop {}, sample rate {}",
                o.n_fft, o.hop, o.sample_rate
            ));
        }
        if !(0.0 <= o.f_min && o.f_min < f_max && f_max <= nyquist) {
            return bad(format!(
                "the mel band {} .. {f_max} Hz must lie inside 0 .. {nyquist} Hz",
                o.f_min
            ));
        }
        let n_coeffs = match o.kind {
            FeatureKind::Mfcc(n) => n,
            _ => 0,
        };
        if o.kind != FeatureKind::Power && (o.n_mels == 0 || n_coeffs > o.n_mels) {
            return bad(format!(
                "{} mel bands cannot give {n_coeffs} coefficients (need 1 <= n <= n_mels)",
                o.n_mels
            ));
        }
        if matches!(o.kind, FeatureKind::Mfcc(0)) {
            return bad("MFCCs need at least one coefficient".into());
        }
        let bands = if o.kind == FeatureKind::Power {
            Vec::new()
        } else {
            filterbank(
                o.sample_rate,
                o.n_fft,
                o.n_mels,
                o.f_min,
                f_max,
                o.mel_scale,
                o.slaney_norm,
            )
        };
        if let Some(m) = bands.iter().position(|b| b.weights.is_empty()) {
            return bad(format!(
                "mel band {m} covers no FFT bin: use fewer mel bands or a longer frame \
                 ({} bands over {} bins)",
                o.n_mels,
                o.n_fft / 2 + 1
            ));
        }
        let m = o.n_mels;
        let mut dct = Vec::with_capacity(n_coeffs * m);
        for k in 0..n_coeffs {
            let scale = if k == 0 {
                (1.0 / m as f64).sqrt()
            } else {
                (2.0 / m as f64).sqrt()
            };
            for n in 0..m {
                let angle = std::f64::consts::PI * k as f64 * (2 * n + 1) as f64 / (2 * m) as f64;
                dct.push((scale * angle.cos()) as f32);
            }
        }
        Ok(Self {
            window: o.window.coefficients(o.n_fft),
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(o.n_fft),
            bands,
            dct,
            options,
        })
    }

    /// The settings.
    pub fn options(&self) -> &FeatureOptions {
        &self.options
    }

    /// The frames of a clip of `samples` samples.
    pub fn frames(&self, samples: usize) -> usize {
        let o = &self.options;
        if o.center {
            samples / o.hop + 1
        } else {
            samples.saturating_sub(o.n_fft) / o.hop + usize::from(samples >= o.n_fft)
        }
    }

    /// The values of each frame: FFT bins, mel bands or coefficients.
    pub fn bands(&self) -> usize {
        match self.options.kind {
            FeatureKind::Power => self.options.n_fft / 2 + 1,
            FeatureKind::LogMel => self.options.n_mels,
            FeatureKind::Mfcc(n) => n,
        }
    }

    /// The shape of the features of a clip of `samples` samples: `[frames, bands]`.
    pub fn shape(&self, samples: usize) -> [usize; 2] {
        [self.frames(samples), self.bands()]
    }

    /// The features of `clip`, `[frames, bands]` row-major.
    pub fn compute(&self, clip: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; self.frames(clip.len()) * self.bands()];
        self.compute_into(clip, &mut out);
        out
    }

    /// [`Features::compute`] into `out` (`frames * bands` long).
    pub fn compute_into(&self, clip: &[f32], out: &mut [f32]) {
        let o = &self.options;
        match o.kind {
            FeatureKind::Power => {
                let bins = self.bands();
                self.each_power(clip, |t, power| {
                    out[t * bins..(t + 1) * bins].copy_from_slice(power);
                });
            }
            FeatureKind::LogMel => {
                self.mel_into(clip, out);
                to_db(out, o.top_db);
            }
            FeatureKind::Mfcc(n) => {
                let m = o.n_mels;
                let mut db = vec![0.0; self.frames(clip.len()) * m];
                self.mel_into(clip, &mut db);
                to_db(&mut db, o.top_db);
                for (row, frame) in out.chunks_exact_mut(n).zip(db.chunks_exact(m)) {
                    for (k, c) in row.iter_mut().enumerate() {
                        let basis = &self.dct[k * m..(k + 1) * m];
                        *c = basis.iter().zip(frame).map(|(a, b)| a * b).sum();
                    }
                }
            }
        }
    }

    /// The mel powers of `clip`, `[frames, n_mels]`, into `out`.
    fn mel_into(&self, clip: &[f32], out: &mut [f32]) {
        let m = self.options.n_mels;
        self.each_power(clip, |t, power| {
            for (v, band) in out[t * m..(t + 1) * m].iter_mut().zip(&self.bands) {
                let p = &power[band.start..band.start + band.weights.len()];
                *v = p.iter().zip(&band.weights).map(|(a, b)| a * b).sum();
            }
        });
    }

    /// Calls `f(t, power)` with the power spectrum of each frame `t` of `clip`.
    fn each_power(&self, clip: &[f32], mut f: impl FnMut(usize, &[f32])) {
        let o = &self.options;
        let mut frame = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f32; o.n_fft / 2 + 1];
        let pad = if o.center { o.n_fft / 2 } else { 0 };
        for t in 0..self.frames(clip.len()) {
            // Frame t covers samples t * hop - pad .. + n_fft; outside the clip, zeros.
            let start = (t * o.hop) as isize - pad as isize;
            for (i, (v, &w)) in frame.iter_mut().zip(&self.window).enumerate() {
                let s = start + i as isize;
                *v = if s >= 0 && (s as usize) < clip.len() {
                    clip[s as usize] * w
                } else {
                    0.0
                };
            }
            // The buffers come from the plan itself, so the transform cannot fail.
            let _ = self
                .fft
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch);
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = norm_sqr(*c);
            }
            f(t, &power);
        }
    }
}

fn norm_sqr(c: Complex<f32>) -> f32 {
    c.re * c.re + c.im * c.im
}

/// Power to decibels in place, `10 log10(max(p, 1e-10))`, floored `top_db` below the
/// peak (librosa's `power_to_db` with `ref=1.0`).
pub fn to_db(values: &mut [f32], top_db: Option<f32>) {
    let mut peak = f32::NEG_INFINITY;
    for v in values.iter_mut() {
        *v = 10.0 * v.max(1e-10).log10();
        peak = peak.max(*v);
    }
    if let Some(top) = top_db {
        let floor = peak - top;
        for v in values.iter_mut() {
            *v = v.max(floor);
        }
    }
}
