//! Audio: WAV files read into mono `f32` clips ([`read_wav`]), resampled to one rate
//! and fitted to one length ([`resample`], [`fit_length`]), loaded from a folder of
//! labelled files ([`Waveforms`]) and turned into spectral features ([`Features`]: the
//! STFT's power, log-mel spectrograms, MFCCs). [`fsdd`] loads the Free Spoken Digit Dataset.

mod clips;
mod features;
pub mod fsdd;
mod mel;
mod resample;
mod wav;

pub use clips::{AudioOptions, LabelFrom, Waveforms};
pub use features::{FeatureOptions, Features, Kind, Window, to_db};
pub use mel::MelScale;
pub use resample::{Align, fit_length, resample};
pub use wav::{Clip, decode_wav, read_wav};
