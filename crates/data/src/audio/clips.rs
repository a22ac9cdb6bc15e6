//! [`Waveforms`]: labelled clips of one rate and one length, and loading them from a
//! folder of WAV files, labelled by subfolder or by file name.

use std::path::{Path, PathBuf};

use super::resample::{Align, fit_length, resample};
use super::wav::decode_wav;
use crate::dataset::{Dataset, Dtype, Input, Origin, Sample, Target, TargetKind};
use crate::error::{Error, Result};
use crate::read;

/// Where a file's label comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelFrom {
    /// The name of the subfolder holding it (`dir/yes/a.wav` is `yes`).
    Subfolder,
    /// The start of its file name, up to the first `separator` (`7_jackson_3.wav` is
    /// `7` with `'_'`).
    FileName {
        /// The character that ends the label.
        separator: char,
    },
}

/// How clips are loaded: the common rate, the fixed length and the labels.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioOptions {
    /// Every clip is resampled to this rate (Hz).
    pub sample_rate: u32,
    /// Every clip is padded with silence or cropped to this many samples.
    pub length: usize,
    /// Where a clip sits in its window.
    pub align: Align,
    /// Where labels come from.
    pub labels: LabelFrom,
}

impl AudioOptions {
    /// Clips at `sample_rate` Hz fitted to `length` samples, centred, labelled by the
    /// file name up to its first `_`.
    pub fn new(sample_rate: u32, length: usize) -> Self {
        Self {
            sample_rate,
            length,
            align: Align::Center,
            labels: LabelFrom::FileName { separator: '_' },
        }
    }

    /// The same options with labels from `from`.
    pub fn labels(mut self, from: LabelFrom) -> Self {
        self.labels = from;
        self
    }

    /// The same options with clips aligned by `align`.
    pub fn align(mut self, align: Align) -> Self {
        self.align = align;
        self
    }
}

/// Labelled clips of one rate and one length, back to back, with each clip's file
/// name. As a [`Dataset`], each sample is a clip, shape `[length]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Waveforms {
    samples: Vec<f32>,
    shape: [usize; 1],
    sample_rate: u32,
    labels: Vec<u32>,
    class_names: Vec<String>,
    names: Vec<String>,
}

impl Waveforms {
    /// The clips of the WAV files `files` (each a name for errors and splits, its
    /// bytes, its label), decoded on every core, resampled and fitted as `options`
    /// says. Class names are the labels sorted (as numbers when all are numbers).
    pub fn from_files(
        files: &[(PathBuf, Vec<u8>, String)],
        options: &AudioOptions,
    ) -> Result<Self> {
        if options.length == 0 {
            return Err(Error::Config(
                "the clip length must be at least 1 sample".into(),
            ));
        }
        let clips = read::parallel_map(files, read::cores(), |(path, bytes, _)| {
            let clip = decode_wav(bytes, path)?;
            let resampled = resample(&clip.samples, clip.sample_rate, options.sample_rate)
                .map_err(|e| Error::Wav {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            Ok(fit_length(&resampled, options.length, options.align))
        })?;
        let mut class_names: Vec<String> = files.iter().map(|(_, _, l)| l.clone()).collect();
        class_names.sort_by(|a, b| match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.cmp(b),
        });
        class_names.dedup();
        let labels = files
            .iter()
            .map(|(_, _, l)| class_names.iter().position(|c| c == l).unwrap_or(0) as u32)
            .collect();
        Ok(Self {
            samples: clips.concat(),
            shape: [options.length],
            sample_rate: options.sample_rate,
            labels,
            class_names,
            names: files
                .iter()
                .map(|(p, _, _)| {
                    p.file_name().map_or_else(
                        || p.display().to_string(),
                        |n| n.to_string_lossy().into_owned(),
                    )
                })
                .collect(),
        })
    }

    /// The WAV files of `dir` (`*.wav`, any case), labelled as `options` says: with
    /// [`LabelFrom::Subfolder`] those of its subfolders, else those directly inside.
    /// A folder without WAV files, or a file whose name holds no label, is an error
    /// that names it.
    pub fn load_folder(dir: &Path, options: &AudioOptions) -> Result<Self> {
        let mut paths: Vec<(PathBuf, String)> = Vec::new();
        match options.labels {
            LabelFrom::Subfolder => {
                for sub in sorted_entries(dir)? {
                    if sub.is_dir() {
                        let label = file_name(&sub);
                        for p in sorted_entries(&sub)? {
                            if is_wav(&p) {
                                paths.push((p, label.clone()));
                            }
                        }
                    }
                }
            }
            LabelFrom::FileName { separator } => {
                for p in sorted_entries(dir)? {
                    if is_wav(&p) {
                        let label = label_of(&p, separator)?;
                        paths.push((p, label));
                    }
                }
            }
        }
        if paths.is_empty() {
            let where_ = match options.labels {
                LabelFrom::Subfolder => "in its subfolders",
                LabelFrom::FileName { .. } => "in it",
            };
            return Err(Error::Missing {
                path: dir.to_path_buf(),
                hint: format!("no .wav file {where_}"),
            });
        }
        let files = read::parallel_map(&paths, read::cores(), |(p, label)| {
            Ok((
                p.clone(),
                std::fs::read(p).map_err(|e| Error::io(p, e))?,
                label.clone(),
            ))
        })?;
        Self::from_files(&files, options)
    }

    /// The number of clips.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no clips.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Samples per clip.
    pub fn clip_len(&self) -> usize {
        self.shape[0]
    }

    /// The clips' rate (Hz).
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Clip `i`.
    pub fn clip(&self, i: usize) -> Result<&[f32]> {
        let n = self.clip_len();
        self.samples.get(i * n..(i + 1) * n).ok_or(Error::Index {
            index: i,
            len: self.len(),
        })
    }

    /// Each clip's label.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The class names in label order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Each clip's file name.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// A new set of the clips at `indices`, in that order (copied); the classes stay.
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        let mut samples = Vec::with_capacity(indices.len() * self.clip_len());
        for &i in indices {
            samples.extend_from_slice(self.clip(i)?);
        }
        Ok(Self {
            samples,
            shape: self.shape,
            sample_rate: self.sample_rate,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
            names: indices.iter().map(|&i| self.names[i].clone()).collect(),
        })
    }

    /// The clips whose name `keep` accepts, and the others.
    pub fn partition(&self, keep: impl Fn(&str) -> bool) -> Result<(Self, Self)> {
        let (yes, no): (Vec<usize>, Vec<usize>) =
            (0..self.len()).partition(|&i| keep(&self.names[i]));
        Ok((self.select(&yes)?, self.select(&no)?))
    }
}

impl Dataset for Waveforms {
    fn len(&self) -> usize {
        Waveforms::len(self)
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn target_kind(&self) -> TargetKind {
        TargetKind::Classes(self.class_names.len())
    }
    fn get(&self, index: usize) -> Result<Sample<'_>> {
        Ok(Sample {
            input: Input::F32(self.clip(index)?.into()),
            target: Target::Class(self.labels[index]),
        })
    }
    fn origin(&self, index: usize) -> Option<Origin> {
        Some(Origin {
            file: self.names.get(index)?.clone(),
            place: None,
        })
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<_>>()?;
    out.sort();
    Ok(out)
}

fn is_wav(p: &Path) -> bool {
    p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav"))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The label at the start of `p`'s file name, up to `separator`.
pub(crate) fn label_of(p: &Path, separator: char) -> Result<String> {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.split_once(separator) {
        Some((label, _)) if !label.is_empty() => Ok(label.to_string()),
        _ => Err(Error::Config(format!(
            "{}: the file name holds no label before a `{separator}`",
            p.display()
        ))),
    }
}
