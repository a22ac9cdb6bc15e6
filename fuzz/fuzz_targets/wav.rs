//! The WAV reader on arbitrary bytes: an error or a clip with samples, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(clip) = kiln_data::audio::decode_wav(data, Path::new("fuzz.wav")) {
        assert!(!clip.samples.is_empty() && clip.sample_rate > 0);
    }
});
