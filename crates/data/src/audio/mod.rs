//! Audio: WAV files read into mono `f32` clips ([`read_wav`]), resampled to one rate
//! and fitted to one length ([`resample`], [`fit_length`]), and loaded from a folder of
//! labelled files ([`Waveforms`]). [`fsdd`] loads the Free Spoken Digit Dataset.

mod clips;
pub mod fsdd;
mod resample;
mod wav;

pub use clips::{AudioOptions, LabelFrom, Waveforms};
pub use resample::{Align, fit_length, resample};
pub use wav::{Clip, decode_wav, read_wav};
