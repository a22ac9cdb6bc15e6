//! The [`Dataset`] abstraction (a length and sample access), the in-memory data set
//! that the loaders return, and [`Subset`], a view of some samples of another set.
//!
//! A sample's input is an image (`u8` or `f32`, stored height x width x channels) or a
//! feature vector; its target is a class (an integer label) or real values (one-hot
//! rows, regression targets).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// The element type of a data set's inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// Bytes (raw image pixels, 0..=255).
    U8,
    /// 32-bit floats.
    F32,
}

/// What a data set's targets are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// One integer label per sample, in `0..classes`.
    Classes(usize),
    /// `width` real values per sample (one-hot rows, regression targets).
    Real(usize),
}

/// One sample's input: borrowed from memory, or owned when read from a file.
#[derive(Clone, Debug, PartialEq)]
pub enum Input<'a> {
    /// Bytes.
    U8(Cow<'a, [u8]>),
    /// Floats.
    F32(Cow<'a, [f32]>),
}

impl Input<'_> {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Input::U8(v) => v.len(),
            Input::F32(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One sample's target.
#[derive(Clone, Debug, PartialEq)]
pub enum Target<'a> {
    /// A class label.
    Class(u32),
    /// Real values.
    Real(Cow<'a, [f32]>),
}

/// One sample: an input and its target.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample<'a> {
    /// The input, `shape` elements in row-major (HWC for images) order.
    pub input: Input<'a>,
    /// The target.
    pub target: Target<'a>,
}

/// Where a sample came from: a file and, where the file holds many samples, the place
/// in it (`record 17`). Errors about a sample's values name it, so that a user can find
/// the bad bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file (its path, or its name inside an archive).
    pub file: String,
    /// The place in the file, when it holds more than one sample.
    pub place: Option<String>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Some(place) => write!(f, "{}, {place}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

/// A data set: a number of samples of one shape, each read by index.
///
/// Implementations must be shareable between the batcher's threads, and
/// [`get`](Dataset::get) must return the same sample for the same index every time.
pub trait Dataset: Send + Sync {
    /// The number of samples.
    fn len(&self) -> usize;

    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of one input: `[height, width, channels]` for images,
    /// `[features]` for vectors.
    fn shape(&self) -> &[usize];

    /// The element type of the inputs.
    fn dtype(&self) -> Dtype;

    /// What the targets are.
    fn target_kind(&self) -> TargetKind;

    /// Sample `index` (`< len()`).
    fn get(&self, index: usize) -> Result<Sample<'_>>;

    /// Sample `index` for training, drawn with `bits`: the random bits that the
    /// batcher derives from (seed, epoch, index), the same for every thread. A data set
    /// that augments its own samples (audio: a shift and a gain before the features,
    /// masks after) draws from them; the others return [`get`](Dataset::get)'s sample.
    fn get_seeded(&self, index: usize, bits: u64) -> Result<Sample<'_>> {
        let _ = bits;
        self.get(index)
    }

    /// The number of elements of one input.
    fn sample_len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Where sample `index` came from, when the data set reads it from a file of its
    /// own (streamed records, audio files); `None` for data held in memory after a
    /// loader checked it.
    fn origin(&self, index: usize) -> Option<Origin> {
        let _ = index;
        None
    }
}

impl<D: Dataset + ?Sized> Dataset for &D {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn shape(&self) -> &[usize] {
        (**self).shape()
    }
    fn dtype(&self) -> Dtype {
        (**self).dtype()
    }
    fn target_kind(&self) -> TargetKind {
        (**self).target_kind()
    }
    fn get(&self, index: usize) -> Result<Sample<'_>> {
        (**self).get(index)
    }
    fn get_seeded(&self, index: usize, bits: u64) -> Result<Sample<'_>> {
        (**self).get_seeded(index, bits)
    }
    fn origin(&self, index: usize) -> Option<Origin> {
        (**self).origin(index)
    }
}

impl<D: Dataset + ?Sized> Dataset for Arc<D> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn shape(&self) -> &[usize] {
        (**self).shape()
    }
    fn dtype(&self) -> Dtype {
        (**self).dtype()
    }
    fn target_kind(&self) -> TargetKind {
        (**self).target_kind()
    }
    fn get(&self, index: usize) -> Result<Sample<'_>> {
        (**self).get(index)
    }
    fn get_seeded(&self, index: usize, bits: u64) -> Result<Sample<'_>> {
        (**self).get_seeded(index, bits)
    }
    fn origin(&self, index: usize) -> Option<Origin> {
        (**self).origin(index)
    }
}

/// The inputs of an [`InMemory`] data set, all samples back to back.
#[derive(Clone, Debug, PartialEq)]
pub enum Inputs {
    /// Bytes.
    U8(Vec<u8>),
    /// Floats.
    F32(Vec<f32>),
}

impl Inputs {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Inputs::U8(v) => v.len(),
            Inputs::F32(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        match self {
            Inputs::U8(_) => Dtype::U8,
            Inputs::F32(_) => Dtype::F32,
        }
    }
}

/// The targets of an [`InMemory`] data set.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// One label per sample.
    Classes {
        /// The labels, each `< classes`.
        labels: Vec<u32>,
        /// The number of classes.
        classes: usize,
    },
    /// `width` values per sample, back to back.
    Real {
        /// The values.
        values: Vec<f32>,
        /// Values per sample (at least 1).
        width: usize,
    },
}

impl Targets {
    /// The number of samples the targets describe.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes { labels, .. } => labels.len(),
            Targets::Real { values, width } => values.len() / (*width).max(1),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the targets are.
    pub fn kind(&self) -> TargetKind {
        match self {
            Targets::Classes { classes, .. } => TargetKind::Classes(*classes),
            Targets::Real { width, .. } => TargetKind::Real(*width),
        }
    }
}

/// A data set held in memory: the inputs of all samples back to back, and their
/// targets. The loaders return it; images stay `u8` (the batcher converts each batch
/// to `f32`), so CIFAR-10's training set takes its 150 MB and no more.
#[derive(Clone, Debug, PartialEq)]
pub struct InMemory {
    shape: Vec<usize>,
    sample_len: usize,
    inputs: Inputs,
    targets: Targets,
    class_names: Vec<String>,
}

impl InMemory {
    /// A data set of samples of `shape`, after checking that the inputs hold one
    /// `shape` per target and that every label is below the number of classes.
    pub fn new(shape: Vec<usize>, inputs: Inputs, targets: Targets) -> Result<Self> {
        if shape.is_empty() || shape.contains(&0) {
            return Err(Error::Config(format!(
                "a sample shape needs at least one dimension and no zero ones, got {shape:?}"
            )));
        }
        let sample_len = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| Error::Config(format!("sample shape {shape:?} overflows")))?;
        if let Targets::Real { values, width } = &targets
            && (*width == 0 || values.len() % width != 0)
        {
            return Err(Error::Config(format!(
                "{} target values do not make rows of {width}",
                values.len()
            )));
        }
        if let Targets::Classes { labels, classes } = &targets
            && let Some((i, &l)) = labels
                .iter()
                .enumerate()
                .find(|&(_, &l)| l as usize >= *classes)
        {
            return Err(Error::Config(format!(
                "label {l} of sample {i} is outside the {classes} classes"
            )));
        }
        let n = targets.len();
        if n.checked_mul(sample_len) != Some(inputs.len()) {
            return Err(Error::Config(format!(
                "{} input elements are not {n} samples of shape {shape:?}",
                inputs.len()
            )));
        }
        Ok(Self {
            shape,
            sample_len,
            inputs,
            targets,
            class_names: Vec::new(),
        })
    }

    /// The same data set with class names (label order).
    pub fn with_class_names(mut self, names: Vec<String>) -> Self {
        self.class_names = names;
        self
    }

    /// The class names in label order, empty when unknown.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The inputs, all samples back to back.
    pub fn inputs(&self) -> &Inputs {
        &self.inputs
    }

    /// The targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// The labels, when the targets are classes.
    pub fn labels(&self) -> Option<&[u32]> {
        match &self.targets {
            Targets::Classes { labels, .. } => Some(labels),
            Targets::Real { .. } => None,
        }
    }

    /// The input bytes, when the inputs are `u8`.
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.inputs {
            Inputs::U8(v) => Some(v),
            Inputs::F32(_) => None,
        }
    }

    /// The input floats, when the inputs are `f32`.
    pub fn floats(&self) -> Option<&[f32]> {
        match &self.inputs {
            Inputs::F32(v) => Some(v),
            Inputs::U8(_) => None,
        }
    }

    /// How many samples each class has (empty for real-valued targets).
    pub fn class_counts(&self) -> Vec<usize> {
        match &self.targets {
            Targets::Classes { labels, classes } => {
                let mut counts = vec![0; *classes];
                for &l in labels {
                    counts[l as usize] += 1;
                }
                counts
            }
            Targets::Real { .. } => Vec::new(),
        }
    }

    /// Splits into the inputs and targets.
    pub fn into_parts(self) -> (Vec<usize>, Inputs, Targets) {
        (self.shape, self.inputs, self.targets)
    }

    /// A new data set of the samples at `indices`, in that order (copied).
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        let n = self.len();
        if let Some(&index) = indices.iter().find(|&&i| i >= n) {
            return Err(Error::Index { index, len: n });
        }
        let s = self.sample_len;
        let inputs = match &self.inputs {
            Inputs::U8(v) => Inputs::U8(gather(v, indices, s)),
            Inputs::F32(v) => Inputs::F32(gather(v, indices, s)),
        };
        let targets = match &self.targets {
            Targets::Classes { labels, classes } => Targets::Classes {
                labels: indices.iter().map(|&i| labels[i]).collect(),
                classes: *classes,
            },
            Targets::Real { values, width } => Targets::Real {
                values: gather(values, indices, *width),
                width: *width,
            },
        };
        Ok(Self {
            shape: self.shape.clone(),
            sample_len: s,
            inputs,
            targets,
            class_names: self.class_names.clone(),
        })
    }

    /// The first `at` samples and the rest (copied).
    pub fn split_at(&self, at: usize) -> Result<(Self, Self)> {
        let n = self.len();
        if at > n {
            return Err(Error::Index { index: at, len: n });
        }
        let head: Vec<usize> = (0..at).collect();
        let tail: Vec<usize> = (at..n).collect();
        Ok((self.select(&head)?, self.select(&tail)?))
    }

    /// Replaces the inputs by `f32` ones of the same shape (after preprocessing).
    pub(crate) fn with_inputs(&self, inputs: Inputs) -> Result<Self> {
        Ok(Self::new(self.shape.clone(), inputs, self.targets.clone())?
            .with_class_names(self.class_names.clone()))
    }

    /// Replaces the targets (one-hot encoding).
    pub(crate) fn with_targets(&self, targets: Targets) -> Result<Self> {
        Ok(Self::new(self.shape.clone(), self.inputs.clone(), targets)?
            .with_class_names(self.class_names.clone()))
    }
}

fn gather<T: Copy>(values: &[T], indices: &[usize], width: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(indices.len() * width);
    for &i in indices {
        out.extend_from_slice(&values[i * width..(i + 1) * width]);
    }
    out
}

impl Dataset for InMemory {
    fn len(&self) -> usize {
        InMemory::len(self)
    }

    fn shape(&self) -> &[usize] {
        InMemory::shape(self)
    }

    fn dtype(&self) -> Dtype {
        self.inputs.dtype()
    }

    fn target_kind(&self) -> TargetKind {
        self.targets.kind()
    }

    fn sample_len(&self) -> usize {
        InMemory::sample_len(self)
    }

    fn get(&self, index: usize) -> Result<Sample<'_>> {
        InMemory::get(self, index)
    }
}

impl InMemory {
    /// The number of samples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of one input.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of elements of one input.
    pub fn sample_len(&self) -> usize {
        self.sample_len
    }

    /// Sample `index`, borrowed.
    pub fn get(&self, index: usize) -> Result<Sample<'_>> {
        let len = self.len();
        if index >= len {
            return Err(Error::Index { index, len });
        }
        let s = self.sample_len;
        let range = index * s..(index + 1) * s;
        let input = match &self.inputs {
            Inputs::U8(v) => Input::U8(Cow::Borrowed(&v[range])),
            Inputs::F32(v) => Input::F32(Cow::Borrowed(&v[range])),
        };
        let target = match &self.targets {
            Targets::Classes { labels, .. } => Target::Class(labels[index]),
            Targets::Real { values, width } => {
                Target::Real(Cow::Borrowed(&values[index * width..(index + 1) * width]))
            }
        };
        Ok(Sample { input, target })
    }
}

/// The samples of another data set at some indices, without copying them: the
/// training part of a split, one fold of k-fold cross-validation.
#[derive(Clone, Debug)]
pub struct Subset<D> {
    inner: D,
    indices: Vec<usize>,
}

impl<D: Dataset> Subset<D> {
    /// The samples of `inner` at `indices`, in that order.
    pub fn new(inner: D, indices: Vec<usize>) -> Result<Self> {
        let len = inner.len();
        if let Some(&index) = indices.iter().find(|&&i| i >= len) {
            return Err(Error::Index { index, len });
        }
        Ok(Self { inner, indices })
    }

    /// The indices into the inner data set.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The inner data set.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: Dataset> Dataset for Subset<D> {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn shape(&self) -> &[usize] {
        self.inner.shape()
    }
    fn dtype(&self) -> Dtype {
        self.inner.dtype()
    }
    fn target_kind(&self) -> TargetKind {
        self.inner.target_kind()
    }
    fn get(&self, index: usize) -> Result<Sample<'_>> {
        let len = self.indices.len();
        let &inner = self.indices.get(index).ok_or(Error::Index { index, len })?;
        self.inner.get(inner)
    }
    fn get_seeded(&self, index: usize, bits: u64) -> Result<Sample<'_>> {
        let len = self.indices.len();
        let &inner = self.indices.get(index).ok_or(Error::Index { index, len })?;
        self.inner.get_seeded(inner, bits)
    }
    fn origin(&self, index: usize) -> Option<Origin> {
        self.inner.origin(*self.indices.get(index)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> InMemory {
        InMemory::new(
            vec![1, 2, 1],
            Inputs::U8(vec![1, 2, 3, 4, 5, 6]),
            Targets::Classes {
                labels: vec![0, 2, 1],
                classes: 3,
            },
        )
        .unwrap()
    }

    #[test]
    fn new_checks_sizes_and_labels() {
        let bad_len = InMemory::new(
            vec![2],
            Inputs::U8(vec![1, 2, 3]),
            Targets::Classes {
                labels: vec![0, 1],
                classes: 2,
            },
        );
        assert!(matches!(bad_len, Err(Error::Config(_))));
        let bad_label = InMemory::new(
            vec![1],
            Inputs::U8(vec![1]),
            Targets::Classes {
                labels: vec![5],
                classes: 2,
            },
        );
        assert!(bad_label.unwrap_err().to_string().contains("label 5"));
        assert!(
            InMemory::new(
                vec![0],
                Inputs::U8(vec![]),
                Targets::Classes {
                    labels: vec![],
                    classes: 1
                }
            )
            .is_err()
        );
    }

    #[test]
    fn get_select_and_subset_agree() {
        let d = tiny();
        assert_eq!(d.len(), 3);
        assert_eq!(d.sample_len(), 2);
        let s = d.get(1).unwrap();
        assert_eq!(s.input, Input::U8(Cow::Borrowed(&[3, 4])));
        assert_eq!(s.target, Target::Class(2));
        assert!(matches!(d.get(3), Err(Error::Index { index: 3, len: 3 })));

        let picked = d.select(&[2, 0]).unwrap();
        assert_eq!(picked.bytes().unwrap(), &[5, 6, 1, 2]);
        assert_eq!(picked.labels().unwrap(), &[1, 0]);
        let view = Subset::new(&d, vec![2, 0]).unwrap();
        for i in 0..2 {
            assert_eq!(view.get(i).unwrap(), picked.get(i).unwrap());
        }
        assert!(Subset::new(&d, vec![3]).is_err());
        assert_eq!(d.class_counts(), vec![1, 1, 1]);
        let (a, b) = d.split_at(1).unwrap();
        assert_eq!((a.len(), b.len()), (1, 2));
    }
}
