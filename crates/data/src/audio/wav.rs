//! Reading WAV files with `hound`: 8, 16, 24 and 32-bit integer PCM and 32-bit float,
//! any number of channels, mixed down to one channel of `f32` in `-1.0..=1.0`.
//!
//! Integer samples are scaled by `2^(bits - 1)` (8-bit files, which are unsigned on
//! disk, are centred by `hound`), as `soundfile` and `torchaudio` read them, so the
//! features match theirs.

use std::path::Path;

use crate::error::{Error, Result};

/// One recording: mono samples and their rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    /// The samples, channels averaged, in `-1.0..=1.0` for integer files.
    pub samples: Vec<f32>,
    /// Samples per second.
    pub sample_rate: u32,
}

impl Clip {
    /// The duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// Reads the WAV file at `path`.
pub fn read_wav(path: &Path) -> Result<Clip> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_wav(&bytes, path)
}

/// Decodes the bytes of a WAV file; `path` names it in errors.
///
/// A bad header, a data chunk shorter than its header says, a format other than
/// integer PCM or float (A-law, mu-law, ADPCM), a float width other than 32 bits and a
/// recording without samples are errors that name the file.
pub fn decode_wav(bytes: &[u8], path: &Path) -> Result<Clip> {
    let wav_error = |message: String| Error::Wav {
        path: path.to_path_buf(),
        message,
    };
    if bytes.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut reader = hound::WavReader::new(bytes).map_err(|e| match e {
        hound::Error::Unsupported => wav_error(format!(
            "unsupported format (audio format code {}): only integer PCM and 32-bit \
             float are read",
            format_code(bytes).map_or_else(|| "unknown".to_string(), |c| c.to_string())
        )),
        hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            wav_error("the header is cut short".into())
        }
        e => wav_error(format!("bad header: {e}")),
    })?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels);
    if spec.sample_rate == 0 {
        return Err(wav_error("the header gives a sample rate of 0".into()));
    }
    let total = reader.len() as usize;
    if total == 0 {
        return Err(wav_error("the recording holds no samples".into()));
    }
    let bytes_per_sample = u64::from(spec.bits_per_sample).div_ceil(8);
    let truncated = |read: usize| Error::Truncated {
        path: path.to_path_buf(),
        what: "the data chunk".into(),
        expected: total as u64 * bytes_per_sample,
        found: read as u64 * bytes_per_sample,
    };
    // The header's count is not trusted for the allocation: a lying header must not
    // reserve gigabytes.
    let mut interleaved = Vec::with_capacity(total.min(bytes.len()));
    match spec.sample_format {
        hound::SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(wav_error(format!(
                    "unsupported float width of {} bits: only 32-bit float is read",
                    spec.bits_per_sample
                )));
            }
            for s in reader.samples::<f32>() {
                // Reading from memory fails only by running out of bytes.
                let v = s.map_err(|_| truncated(interleaved.len()))?;
                if !v.is_finite() {
                    // Caught here, it names the file; past the features it would be a
                    // non-finite spectrogram that the model's loss finds.
                    return Err(wav_error(format!(
                        "sample {} (channel {} of frame {}) is {v}: a float recording must \
                         hold finite values",
                        interleaved.len(),
                        interleaved.len() % channels,
                        interleaved.len() / channels
                    )));
                }
                interleaved.push(v);
            }
        }
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            for s in reader.samples::<i32>() {
                let v = s.map_err(|_| truncated(interleaved.len()))?;
                interleaved.push(v as f32 * scale);
            }
        }
    }
    let samples = if channels == 1 {
        interleaved
    } else {
        let inv = 1.0 / channels as f32;
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * inv)
            .collect()
    };
    Ok(Clip {
        samples,
        sample_rate: spec.sample_rate,
    })
}

/// The audio format code of the `fmt ` chunk (1 PCM, 3 float, 6 A-law, 7 mu-law,
/// 0xFFFE extensible), when the chunk can be found.
fn format_code(bytes: &[u8]) -> Option<u16> {
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        if id == b"fmt " {
            let code = bytes.get(at + 8..at + 10)?;
            return Some(u16::from_le_bytes([code[0], code[1]]));
        }
        at = at.checked_add(8 + len + (len & 1))?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAV file of `spec` holding `samples` (interleaved), written by `hound`.
    pub(crate) fn wav_bytes<S: hound::Sample + Copy>(
        spec: hound::WavSpec,
        samples: &[S],
    ) -> Vec<u8> {
        let mut cursor = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        cursor.into_inner()
    }

    fn spec(channels: u16, bits: u16, format: hound::SampleFormat) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: 8000,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    #[test]
    fn integer_widths_scale_to_unit_range() {
        let p = Path::new("x.wav");
        let int = hound::SampleFormat::Int;
        let c = decode_wav(&wav_bytes(spec(1, 8, int), &[-128i8, 0, 64]), p).unwrap();
        assert_eq!(c.samples, vec![-1.0, 0.0, 0.5]);
        let c = decode_wav(&wav_bytes(spec(1, 16, int), &[-32768i16, 16384, 32767]), p).unwrap();
        assert_eq!(c.samples, vec![-1.0, 0.5, 32767.0 / 32768.0]);
        let c = decode_wav(&wav_bytes(spec(1, 24, int), &[-(1i32 << 23), 1 << 21]), p).unwrap();
        assert_eq!(c.samples, vec![-1.0, 0.25]);
        let c = decode_wav(&wav_bytes(spec(1, 32, int), &[i32::MIN, 1 << 29]), p).unwrap();
        assert_eq!(c.samples, vec![-1.0, 0.25]);
        assert_eq!(c.sample_rate, 8000);
    }

    #[test]
    fn float_and_channels_are_mixed_down() {
        let p = Path::new("x.wav");
        let f = hound::SampleFormat::Float;
        let c = decode_wav(&wav_bytes(spec(2, 32, f), &[0.5f32, -0.5, 1.0, 0.0]), p).unwrap();
        assert_eq!(c.samples, vec![0.0, 0.5]);
        let int = hound::SampleFormat::Int;
        let c = decode_wav(&wav_bytes(spec(3, 16, int), &[3i16, 6, 9, 0, 0, 0]), p).unwrap();
        assert_eq!(c.samples.len(), 2);
        assert!((c.samples[0] - 6.0 / 32768.0).abs() < 1e-9);
    }

    #[test]
    fn non_finite_float_samples_are_errors_naming_the_sample() {
        let p = Path::new("dir/nan.wav");
        let f = hound::SampleFormat::Float;
        for bad in [f32::NAN, f32::INFINITY] {
            let bytes = wav_bytes(spec(2, 32, f), &[0.5f32, -0.5, 0.25, bad]);
            let message = decode_wav(&bytes, p).unwrap_err().to_string();
            assert!(message.starts_with("dir/nan.wav: "), "{message}");
            assert!(
                message.contains(&format!("sample 3 (channel 1 of frame 1) is {bad}")),
                "{message}"
            );
        }
    }

    #[test]
    fn bad_files_are_errors_naming_them() {
        let p = Path::new("dir/bad.wav");
        let good = wav_bytes(spec(1, 16, hound::SampleFormat::Int), &[1i16; 100]);
        let msg = |bytes: &[u8]| decode_wav(bytes, p).unwrap_err().to_string();

        // Cut short inside the data chunk: 60 of the 200 bytes remain.
        let m = msg(&good[..44 + 60]);
        assert!(m.contains("dir/bad.wav") && m.contains("data chunk"), "{m}");
        assert!(m.contains("expected 200") && m.contains("found 60"), "{m}");
        // Cut inside the header, or not a WAV at all.
        assert!(msg(&good[..20]).contains("dir/bad.wav"));
        let m = msg(b"this is not a RIFF file at all, just text");
        assert!(m.contains("bad header"), "{m}");
        assert!(msg(&[]).contains("empty"));

        // A-law (format code 6).
        let mut alaw = wav_bytes(spec(1, 8, hound::SampleFormat::Int), &[1i8; 10]);
        alaw[20..22].copy_from_slice(&6u16.to_le_bytes());
        let m = msg(&alaw);
        assert!(
            m.contains("unsupported format") && m.contains("code 6"),
            "{m}"
        );

        // No samples.
        let empty = wav_bytes::<i16>(spec(1, 16, hound::SampleFormat::Int), &[]);
        assert!(msg(&empty).contains("no samples"));

        // A sample rate of 0.
        let mut zero = good.clone();
        zero[24..32].copy_from_slice(&[0; 8]); // the rate and the byte rate
        assert!(msg(&zero).contains("sample rate of 0"));
    }
}
