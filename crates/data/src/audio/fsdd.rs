//! The Free Spoken Digit Dataset (Z. Jackson et al., CC BY-SA 4.0): 3,000 recordings
//! of the digits 0 to 9, 8 kHz, 16-bit mono, 6 speakers x 10 digits x 50 repetitions,
//! named `{digit}_{speaker}_{index}.wav`.
//!
//! Its official split puts repetitions 0 to 4 of every speaker and digit in the test
//! set (300 recordings) and 5 to 49 in the training set (2,700). [`speaker_split`]
//! holds one speaker out instead, the harder test.

use std::path::Path;

use super::clips::{AudioOptions, LabelFrom, Waveforms, label_of};
use crate::cache::{Cache, MIRROR_VAR};
use crate::checksum::Checksum;
use crate::error::{Error, Result};

/// The recordings' rate (Hz).
pub const SAMPLE_RATE: u32 = 8000;
/// The archive of the recordings (`recordings/*.wav`) at the data set's commit
/// 26eb9aaf (May 2024).
pub const ARCHIVE: &str = "fsdd-recordings.tar.gz";
/// The archive's SHA-256.
pub const ARCHIVE_SHA256: &str = "dc6dcae79befe61700ac2a776d9123131dc5bc74de7a365a7e7fc23da6d20aaa";
/// The data set's repository, whose `recordings/` folder the archive packs.
pub const REPOSITORY: &str = "https://github.com/Jakobovski/free-spoken-digit-dataset";
/// The folder of the cache that holds the archive.
const CACHE_FOLDER: &str = "fsdd";

/// Clips of 1 s at 8 kHz, centred, labelled by digit: all but 20 of the 3,000
/// recordings fit, and the longest (2.3 s) keep their middle second.
pub fn options() -> AudioOptions {
    AudioOptions::new(SAMPLE_RATE, SAMPLE_RATE as usize)
        .labels(LabelFrom::FileName { separator: '_' })
}

/// The recordings at `path`: the archive (`.tar.gz` or `.tar`), or a folder of the WAV
/// files (or one holding `recordings/`).
pub fn load(path: &Path, options: &AudioOptions) -> Result<Waveforms> {
    if path.is_file() {
        return load_archive(path, options);
    }
    let inner = path.join("recordings");
    let dir = if inner.is_dir() {
        inner
    } else {
        path.to_path_buf()
    };
    Waveforms::load_folder(&dir, options)
}

/// The recordings of the archive at `path`, which is not checksummed (a hand-made
/// archive of another commit reads as well); [`load_data`] verifies the published one.
pub fn load_archive(path: &Path, options: &AudioOptions) -> Result<Waveforms> {
    let separator = match options.labels {
        LabelFrom::FileName { separator } => separator,
        LabelFrom::Subfolder => {
            return Err(Error::Config(
                "the spoken digits are labelled by file name, not by subfolder".into(),
            ));
        }
    };
    let is_wav = |name: &str| {
        Path::new(name)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
    };
    let mut files = Vec::new();
    for (name, bytes) in crate::read::tar_members(path, is_wav)? {
        // Errors name the member inside the archive: `x.tar.gz/recordings/0_george_0.wav`.
        let member = path.join(&name);
        let label = label_of(&member, separator)?;
        files.push((member, bytes, label));
    }
    if files.is_empty() {
        return Err(Error::Archive {
            path: path.to_path_buf(),
            message: "holds no .wav file".into(),
        });
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Waveforms::from_files(&files, options)
}

/// The recordings from the cache folder (`KILN_DATA_DIR`, else the user's cache
/// folder), checked against the archive's SHA-256; when the archive is not there yet,
/// fetched from the mirror that `KILN_DATA_MIRROR` names.
///
/// The data set publishes no archive of its recordings alone (only its repository),
/// so without a mirror the error says how to make the archive or where to point
/// [`load`] instead.
pub fn load_data(options: &AudioOptions) -> Result<Waveforms> {
    let cache = Cache::from_env()?;
    let dest = cache.dir().join(CACHE_FOLDER).join(ARCHIVE);
    let has_mirror = std::env::var(MIRROR_VAR).is_ok_and(|m| !m.is_empty());
    if !dest.is_file() && !has_mirror {
        return Err(Error::Missing {
            path: dest,
            hint: format!(
                "pack the recordings/ folder of {REPOSITORY} (commit 26eb9aaf) as {ARCHIVE} \
                 and place it there, set {MIRROR_VAR} to a server that holds {ARCHIVE}, or \
                 read a folder of the recordings with --data"
            ),
        });
    }
    let remote = crate::cache::Remote {
        file: ARCHIVE.to_string(),
        // Never fetched: the mirror replaces it (see above).
        url: REPOSITORY.to_string(),
        checksum: Checksum::Sha256(ARCHIVE_SHA256.to_string()),
    };
    let archive = cache.fetch(&remote, CACHE_FOLDER)?;
    load_archive(&archive, options)
}

/// A recording's name: `(digit, speaker, repetition)`.
pub fn parse_name(name: &str) -> Option<(u32, &str, u32)> {
    let stem = name.strip_suffix(".wav").unwrap_or(name);
    let mut parts = stem.split('_');
    let digit = parts.next()?.parse().ok()?;
    let speaker = parts.next()?;
    let index = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((digit, speaker, index))
}

fn named(clips: &Waveforms) -> Result<Vec<(u32, &str, u32)>> {
    clips
        .names()
        .iter()
        .map(|n| {
            parse_name(n).ok_or_else(|| {
                Error::Config(format!(
                    "{n}: not a spoken digit's name ({{digit}}_{{speaker}}_{{index}}.wav)"
                ))
            })
        })
        .collect()
}

/// The official split: (training set, test set), repetitions 5 to 49 and 0 to 4.
pub fn official_split(clips: &Waveforms) -> Result<(Waveforms, Waveforms)> {
    let names = named(clips)?;
    let (test, train): (Vec<usize>, Vec<usize>) = (0..names.len()).partition(|&i| names[i].2 < 5);
    Ok((clips.select(&train)?, clips.select(&test)?))
}

/// The recordings of every speaker but `speaker` and those of `speaker`: a test on a
/// voice the model never heard.
pub fn speaker_split(clips: &Waveforms, speaker: &str) -> Result<(Waveforms, Waveforms)> {
    let names = named(clips)?;
    let (test, train): (Vec<usize>, Vec<usize>) =
        (0..names.len()).partition(|&i| names[i].1 == speaker);
    if test.is_empty() {
        return Err(Error::Config(format!(
            "no recording of speaker `{speaker}`"
        )));
    }
    Ok((clips.select(&train)?, clips.select(&test)?))
}

/// The speakers, sorted.
pub fn speakers(clips: &Waveforms) -> Result<Vec<String>> {
    let mut s: Vec<String> = named(clips)?.into_iter().map(|n| n.1.to_string()).collect();
    s.sort();
    s.dedup();
    Ok(s)
}
