//! Audio: WAV files read into mono `f32` clips ([`read_wav`]), resampled to one rate
//! and fitted to one length ([`resample`], [`fit_length`]), loaded from a folder of
//! labelled files ([`Waveforms`]), turned into spectral features ([`Features`]: the
//! STFT's power, log-mel spectrograms, MFCCs) and augmented ([`AudioAugment`]: time
//! shift, gain, SpecAugment's masks). [`fsdd`] loads the Free Spoken Digit Dataset.
//!
//! [`Spectrograms`] is the data set a model trains on: each sample is a clip's
//! features, `[frames, bands, 1]`, computed on the batcher's worker threads, so that
//! every epoch sees freshly augmented spectrograms without keeping any.
//!
//! ```
//! use kiln_data::Dataset;
//! use kiln_data::audio::{AudioAugment, FeatureOptions, Spectrograms, Waveforms};
//!
//! // Two clips of a tone at 8 kHz, as a loader would return them.
//! let dir = std::env::temp_dir().join(format!("kiln-audio-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! for (name, freq) in [("low_0.wav", 300.0), ("high_0.wav", 2000.0)] {
//!     let spec = hound::WavSpec {
//!         channels: 1,
//!         sample_rate: 8000,
//!         bits_per_sample: 16,
//!         sample_format: hound::SampleFormat::Int,
//!     };
//!     let mut w = hound::WavWriter::create(dir.join(name), spec).unwrap();
//!     for i in 0..4000 {
//!         let t = i as f32 / 8000.0;
//!         w.write_sample((8000.0 * (6.283 * freq * t).sin()) as i16).unwrap();
//!     }
//!     w.finalize().unwrap();
//! }
//! let clips = Waveforms::load_folder(&dir, &kiln_data::audio::AudioOptions::new(8000, 8000))?;
//! assert_eq!(clips.class_names(), ["high", "low"]);
//!
//! let spectrograms = Spectrograms::new(clips, FeatureOptions::log_mel(8000, 256, 128, 40))?
//!     .augment(AudioAugment::none().shift(400).time_mask(2, 8).freq_mask(2, 6))?;
//! assert_eq!(spectrograms.shape(), [63, 40, 1]);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod augment;
mod clips;
mod features;
pub mod fsdd;
mod mel;
mod resample;
mod spectrograms;
mod wav;

pub use augment::AudioAugment;
pub use clips::{AudioOptions, LabelFrom, Waveforms};
pub use features::{FeatureKind, FeatureOptions, Features, Window, to_db};
pub use mel::MelScale;
pub use resample::{Align, fit_length, resample};
pub use spectrograms::Spectrograms;
pub use wav::{Clip, decode_wav, read_wav};
