//! The audio features against librosa on two real recordings (`tests/audio/`, values
//! written by `tests/audio/librosa_features.py`), and the FSDD loader on the shared
//! archive.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_data::audio::{
    AudioAugment, AudioOptions, FeatureKind, FeatureOptions, Features, LabelFrom, MelScale,
    Spectrograms, Waveforms, Window, fsdd, read_wav,
};
use kiln_data::{BatchOptions, Batcher, Dataset};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/audio")
}

/// `name -> (frames, bands, values)` from `expected.txt`.
fn expected() -> HashMap<String, (usize, usize, Vec<f32>)> {
    let text = std::fs::read_to_string(dir().join("expected.txt")).unwrap();
    text.lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let name = parts.next().unwrap().to_string();
            let frames = parts.next().unwrap().parse().unwrap();
            let bands = parts.next().unwrap().parse().unwrap();
            let values: Vec<f32> = parts.map(|v| v.parse().unwrap()).collect();
            assert_eq!(values.len(), frames * bands, "{name}");
            (name, (frames, bands, values))
        })
        .collect()
}

/// The largest absolute difference, after checking the shapes agree.
fn max_diff(name: &str, got: &[f32], shape: [usize; 2], want: &(usize, usize, Vec<f32>)) -> f32 {
    assert_eq!(shape, [want.0, want.1], "{name}: shape");
    got.iter()
        .zip(&want.2)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

const FILES: [&str; 2] = ["0_jackson_0.wav", "7_theo_3.wav"];

#[test]
fn samples_match_soundfile() {
    let want = expected();
    for f in FILES {
        let clip = read_wav(&dir().join(f)).unwrap();
        assert_eq!(clip.sample_rate, 8000);
        let w = &want[&format!("{f}:samples")];
        // Both scale 16-bit samples by 1/32768: exact.
        // The expected values are printed with 7 significant digits.
        let diff = max_diff(f, &clip.samples, [1, clip.samples.len()], w);
        assert!(diff <= 1e-7, "{f}: {diff}");
    }
}

#[test]
fn power_spectrum_matches_librosa() {
    let want = expected();
    let features =
        Features::new(FeatureOptions::log_mel(8000, 256, 128, 40).kind(FeatureKind::Power))
            .unwrap();
    for f in FILES {
        let clip = read_wav(&dir().join(f)).unwrap().samples;
        let got = features.compute(&clip);
        let w = &want[&format!("{f}:power")];
        let peak = w.2.iter().fold(0.0f32, |m, &v| m.max(v));
        let diff = max_diff(f, &got, features.shape(clip.len()), w);
        // Within 1e-5 of the clip's peak power: single-precision FFTs on both sides.
        assert!(diff <= 1e-5 * peak, "{f}: {diff} of peak {peak}");
    }
}

#[test]
fn log_mel_matches_librosa_on_both_scales() {
    let want = expected();
    let slaney = Features::new(FeatureOptions::log_mel(8000, 256, 128, 40)).unwrap();
    let htk = Features::new(
        FeatureOptions::log_mel(8000, 512, 160, 64)
            .window(Window::Hamming)
            .center(false)
            .mel_scale(MelScale::Htk)
            .slaney_norm(false)
            .band(20.0, 3800.0)
            .top_db(None),
    )
    .unwrap();
    for f in FILES {
        let clip = read_wav(&dir().join(f)).unwrap().samples;
        for (features, key) in [(&slaney, "logmel_slaney"), (&htk, "logmel_htk")] {
            let got = features.compute(&clip);
            let w = &want[&format!("{f}:{key}")];
            let diff = max_diff(key, &got, features.shape(clip.len()), w);
            // Decibels within 0.001 dB everywhere (measured: 6e-5).
            assert!(diff <= 1e-3, "{f} {key}: {diff} dB");
        }
    }
}

#[test]
fn mfcc_matches_librosa() {
    let want = expected();
    let mfcc =
        Features::new(FeatureOptions::log_mel(8000, 256, 128, 40).kind(FeatureKind::Mfcc(13)))
            .unwrap();
    for f in FILES {
        let clip = read_wav(&dir().join(f)).unwrap().samples;
        let got = mfcc.compute(&clip);
        let w = &want[&format!("{f}:mfcc")];
        let diff = max_diff(f, &got, mfcc.shape(clip.len()), w);
        // Coefficients of up to a few hundred, within 0.001 (measured: 1.2e-4).
        assert!(diff <= 1e-3, "{f}: {diff}");
    }
}

#[test]
fn bad_feature_settings_are_refused() {
    let e = |o: FeatureOptions| Features::new(o).unwrap_err().to_string();
    assert!(e(FeatureOptions::log_mel(8000, 256, 0, 40)).contains("hop 0"));
    assert!(e(FeatureOptions::log_mel(8000, 256, 128, 40).band(0.0, 5000.0)).contains("5000"));
    assert!(
        e(FeatureOptions::log_mel(8000, 256, 128, 40).kind(FeatureKind::Mfcc(41))).contains("41")
    );
    assert!(e(FeatureOptions::log_mel(8000, 64, 32, 128)).contains("covers no FFT bin"));
}

#[test]
fn fsdd_official_split_and_augmented_batches() {
    let Some(shared) = common::shared_data("fsdd_official_split_and_augmented_batches") else {
        return;
    };
    let archive = shared.join("speech").join(fsdd::ARCHIVE);
    if !archive.is_file() {
        eprintln!(
            "skipped: fsdd_official_split_and_augmented_batches: {} is absent",
            archive.display()
        );
        return;
    }
    let clips = fsdd::load(&archive, &fsdd::options()).unwrap();
    assert_eq!(clips.len(), 3000);
    assert_eq!(clips.class_names().len(), 10);
    assert_eq!(fsdd::speakers(&clips).unwrap().len(), 6);
    let (train, test) = fsdd::official_split(&clips).unwrap();
    assert_eq!((train.len(), test.len()), (2700, 300));
    for (set, per_class) in [(&train, 270), (&test, 30)] {
        let mut counts = [0usize; 10];
        for &l in set.labels() {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [per_class; 10]);
    }
    // The loaded clip is the recording, centred in its 8,000-sample window.
    let raw = read_wav(&dir().join("7_theo_3.wav")).unwrap().samples;
    let i = test
        .names()
        .iter()
        .position(|n| n == "7_theo_3.wav")
        .unwrap();
    let pad = (8000 - raw.len()) / 2;
    assert_eq!(&test.clip(i).unwrap()[pad..pad + raw.len()], &raw[..]);

    let (rest, held) = fsdd::speaker_split(&clips, "theo").unwrap();
    assert_eq!((rest.len(), held.len()), (2500, 500));

    // Batches of augmented spectrograms are the same whatever the number of workers.
    let spectrograms = Arc::new(
        Spectrograms::new(test, FeatureOptions::log_mel(8000, 256, 128, 40))
            .unwrap()
            .augment(
                AudioAugment::none()
                    .shift(800)
                    .gain(6.0)
                    .time_mask(2, 10)
                    .freq_mask(2, 8),
            )
            .unwrap(),
    );
    assert_eq!(spectrograms.shape(), [63, 40, 1]);
    let epoch = |workers| {
        let mut b = Batcher::new(
            Arc::clone(&spectrograms),
            BatchOptions::new(32).seed(3).workers(workers),
        )
        .unwrap();
        let out: Vec<f32> = b
            .epoch(1)
            .flat_map(|batch| batch.unwrap().inputs().to_vec())
            .collect();
        out
    };
    let (one, two) = (epoch(0), epoch(2));
    assert_eq!(one, two);
    // Augmented: not the plain features.
    let plain = spectrograms.to_memory().unwrap();
    let order_free_sum = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>();
    assert!((order_free_sum(&one) - order_free_sum(plain.floats().unwrap())).abs() > 1.0);

    // As sequences: the same values, `[frames, bands]` each.
    let sequences = Spectrograms::clone(&spectrograms).sequences();
    assert_eq!(sequences.shape(), [63, 40]);
    let as_sequences = sequences.to_memory().unwrap();
    assert_eq!(as_sequences.shape(), [63, 40]);
    assert_eq!(as_sequences.floats().unwrap(), plain.floats().unwrap());
}

/// Writes a 16-bit mono WAV of `samples` at `rate`.
fn write_wav(path: &Path, rate: u32, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn folders_give_labels_and_bad_files_are_named() {
    let scratch = common::Scratch::new("audio-folders");
    let root = scratch.path();
    for (class, n) in [("yes", 2), ("no", 1)] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..n {
            // 16 kHz clips, resampled to 8 kHz on load.
            write_wav(
                &root.join(class).join(format!("{i}.wav")),
                16000,
                &[1000; 3000],
            );
        }
    }
    let options = AudioOptions::new(8000, 2000).labels(LabelFrom::Subfolder);
    let clips = Waveforms::load_folder(root, &options).unwrap();
    assert_eq!(clips.class_names(), ["no", "yes"]);
    assert_eq!(clips.labels(), [0, 1, 1]);
    assert_eq!(
        (clips.len(), clips.clip_len(), clips.sample_rate()),
        (3, 2000, 8000)
    );
    // 1,500 samples at 8 kHz, centred in 2,000: silence, then the constant, then silence.
    let clip = clips.clip(0).unwrap();
    assert_eq!(clip[..250], [0.0; 250]);
    assert!(
        (clip[1000] - 1000.0 / 32768.0).abs() < 1e-4,
        "{}",
        clip[1000]
    );

    // Labels from file names.
    let flat = common::Scratch::new("audio-flat");
    write_wav(&flat.path().join("10_a_0.wav"), 8000, &[1; 100]);
    write_wav(&flat.path().join("9_b_0.wav"), 8000, &[1; 100]);
    let clips = Waveforms::load_folder(flat.path(), &AudioOptions::new(8000, 100)).unwrap();
    assert_eq!(clips.class_names(), ["9", "10"], "numbers sort as numbers");

    // A truncated file is named; a folder without WAV files is named.
    let bytes = std::fs::read(flat.path().join("9_b_0.wav")).unwrap();
    std::fs::write(flat.path().join("3_c_0.wav"), &bytes[..bytes.len() - 10]).unwrap();
    let e = Waveforms::load_folder(flat.path(), &AudioOptions::new(8000, 100))
        .unwrap_err()
        .to_string();
    assert!(e.contains("3_c_0.wav") && e.contains("truncated"), "{e}");
    let empty = common::Scratch::new("audio-empty");
    let e = Waveforms::load_folder(empty.path(), &options)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&empty.path().display().to_string()) && e.contains("no .wav"),
        "{e}"
    );
    // A name without a label.
    write_wav(&empty.path().join("nolabel.wav"), 8000, &[1; 10]);
    let e = Waveforms::load_folder(empty.path(), &AudioOptions::new(8000, 10))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nolabel.wav"), "{e}");
}
