//! Checkpoints: a model's weights, and optionally its optimizer's state, the epoch
//! and the training history, in one [safetensors] file.
//!
//! Weights are stored under their names (`conv1.weight`, `conv1.bias`, ...) as `F32`
//! tensors in kiln's layouts (Keras's: a convolution kernel is `[kh, kw, c_in,
//! c_out]`, a dense kernel `[in, units]`), so a checkpoint opens in PyTorch with
//! `safetensors.torch.load_file`, and weights that PyTorch saved under those names and
//! layouts load into the matching kiln model. Optimizer state tensors are stored as
//! `optimizer.<name>` (`optimizer.conv1.weight.exp_avg`), and a moving average of the
//! weights ([`Ema`], with [`save_with_ema`] and [`load_with_ema`]) as `ema.<name>`
//! (`ema.conv1.weight`, `ema.bn1.running_mean`); the epoch, the history, the
//! optimizer's scalars and the average's settings are JSON in the file's metadata.
//!
//! - [`save`] writes atomically: a temporary file beside the target, synced, then
//!   renamed over it. A crash or a full disk mid-write leaves the previous checkpoint
//!   as it was, and the error names the file.
//! - [`load_weights`] and [`load`] check every name, shape and element type against
//!   the model before they change anything, and the error lists every difference.
//!   They refuse a NaN or an infinity in any tensor they would load, naming the
//!   tensor and the value's index ([`load_with_options`] with
//!   [`LoadOptions::allow_non_finite`] loads it anyway).
//! - [`Weights`] is the same snapshot in memory.
//!
//! ```
//! use kiln::prelude::*;
//! use kiln_train::checkpoint::{self, CheckpointExtra};
//!
//! kiln::model! {
//!     /// A small classifier.
//!     pub struct Small {
//!         input: [4],
//!         hidden: Dense(8, relu),
//!         out: Dense(3, softmax),
//!     }
//! }
//!
//! let cpu = Cpu::new()?;
//! let model = Small::new(&cpu, 1, 7)?;
//! let optimizer = Optimizer::new(Adam::default());
//! let path = std::env::temp_dir().join(format!("kiln-doc-{}.st", std::process::id()));
//! let extra = CheckpointExtra {
//!     optimizer: Some(&optimizer),
//!     epoch: Some(3),
//!     ..Default::default()
//! };
//! checkpoint::save(&path, &model, &extra)?;
//!
//! let mut restored = Small::new(&cpu, 1, 8)?;
//! let mut resumed = Optimizer::new(Adam::default());
//! let info = checkpoint::load(&path, &mut restored, Some(&mut resumed))?;
//! assert_eq!(info.epoch, Some(3));
//! assert_eq!(info.model.as_deref(), Some("Small"));
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [safetensors]: https://huggingface.co/docs/safetensors

pub(crate) mod atomic;
mod format;
mod weights;

use std::collections::BTreeMap;
use std::path::Path;

use kiln_data::FittedPipeline;
use kiln_kernels::Backend;
use kiln_nn::Model;
use kiln_optim::{Ema, EmaState, Optimizer, OptimizerState};

pub use weights::Weights;

use crate::{Error, History, Result};

/// What a checkpoint holds besides the weights; everything is optional.
///
/// `CheckpointExtra::default()` saves the weights alone.
#[derive(Debug)]
pub struct CheckpointExtra<'a, B: Backend> {
    /// The optimizer whose state to save, so that training resumes exactly.
    pub optimizer: Option<&'a Optimizer<B>>,
    /// The epochs completed (training resumes at this epoch, counted from 0).
    pub epoch: Option<usize>,
    /// The figures of the epochs so far.
    pub history: Option<&'a History>,
}

impl<B: Backend> Default for CheckpointExtra<'_, B> {
    fn default() -> Self {
        Self {
            optimizer: None,
            epoch: None,
            history: None,
        }
    }
}

impl<B: Backend> Clone for CheckpointExtra<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for CheckpointExtra<'_, B> {}

/// What a checkpoint's metadata says. Fields are `None` when the file lacks them
/// (weights saved by PyTorch carry none of kiln's metadata).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointInfo {
    /// The name of the model struct that saved it.
    pub model: Option<String>,
    /// The version of kiln that saved it.
    pub kiln_version: Option<String>,
    /// The epochs completed when it was saved.
    pub epoch: Option<usize>,
    /// The training history up to then.
    pub history: Option<History>,
    /// The optimizer's state, tensors included.
    pub optimizer: Option<OptimizerState>,
    /// The moving average of the weights, tensors included, when it was saved with
    /// [`save_with_ema`].
    pub ema: Option<EmaState>,
    /// The file's metadata as stored, every key (kiln's `history` and `optimizer` as
    /// JSON text).
    pub metadata: BTreeMap<String, String>,
}

impl CheckpointInfo {
    /// The fitted table pipeline saved with [`save_with_preprocessing`], or `None`
    /// when the checkpoint holds none.
    ///
    /// # Errors
    /// [`Error::Data`] when the saved pipeline is not one kiln reads.
    pub fn preprocessing(&self) -> Result<Option<FittedPipeline>> {
        Ok(self
            .metadata
            .get(format::PREPROCESSING)
            .map(|text| FittedPipeline::from_json(text))
            .transpose()?)
    }
}

/// Saves `model`'s weights and what `extra` holds to `path` (a `.safetensors` file),
/// atomically: the file at `path` is either the previous one or the new one, whatever
/// happens during the write.
///
/// # Errors
/// [`Error::Io`] naming `path` when the file cannot be written (a missing directory,
/// a full disk); [`Error::Optimizer`] or [`Error::Backend`] when the state cannot be
/// copied to the host.
pub fn save<B: Backend, M: Model<B>>(
    path: impl AsRef<Path>,
    model: &M,
    extra: &CheckpointExtra<'_, B>,
) -> Result<()> {
    save_all(path.as_ref(), model, extra, None, None)
}

/// [`save`], with `ema`'s averages (of every weight and saved state tensor) beside
/// the weights as `ema.<name>` tensors, and its settings and counts in the metadata,
/// so that [`load_with_ema`] resumes it exactly. The model's own weights are saved as
/// [`save`] saves them.
///
/// ```
/// use kiln::prelude::*;
/// use kiln_optim::Ema;
/// use kiln_train::checkpoint::{self, CheckpointExtra};
///
/// kiln::model! {
///     pub struct Small {
///         input: [4],
///         hidden: Dense(8),
///         bn: BatchNorm(relu, convention = pytorch),
///         out: Dense(3, softmax),
///     }
/// }
///
/// let cpu = Cpu::new()?;
/// let model = Small::new(&cpu, 1, 7)?;
/// let mut ema = Ema::new(0.999);
/// ema.update(&model)?; // after each optimizer step
/// let path = std::env::temp_dir().join(format!("kiln-doc-ema-{}.st", std::process::id()));
/// checkpoint::save_with_ema(&path, &model, &CheckpointExtra::default(), &ema)?;
/// assert!(checkpoint::read_info(&path)?.ema.is_some());
///
/// let mut restored = Small::new(&cpu, 1, 8)?;
/// let mut resumed = Ema::new(0.999);
/// checkpoint::load_with_ema(&path, &mut restored, None, &mut resumed)?;
/// assert_eq!(resumed.updates(), 1);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// Those of [`save`], and [`Error::Optimizer`] while the averages are swapped into
/// the model (swap them back first).
pub fn save_with_ema<B: Backend, M: Model<B>>(
    path: impl AsRef<Path>,
    model: &M,
    extra: &CheckpointExtra<'_, B>,
    ema: &Ema<B>,
) -> Result<()> {
    save_all(path.as_ref(), model, extra, Some(ema), None)
}

/// [`save`], with the table cleaning fitted on the training split (its statistics,
/// vocabularies and column order, as JSON in the metadata key `preprocessing`), so
/// that a program that loads the model can predict on raw rows: missing cells and
/// categories as strings. [`CheckpointInfo::preprocessing`] reads it back.
///
/// ```
/// use kiln::prelude::*;
/// use kiln_data::frame::{Frame, ReadOptions};
/// use kiln_data::TablePipeline;
/// use kiln_train::checkpoint::{self, CheckpointExtra};
///
/// kiln::model! {
///     pub struct Small {
///         input: [4], // size, colour=blue, colour=red, colour.unknown
///         out: Dense(2, softmax),
///     }
/// }
///
/// let rows = b"kind,size,colour\na,1,red\nb,NA,blue\na,3,red\n";
/// let train = Frame::parse_csv(rows, "train.csv", &ReadOptions::new())?;
/// let fitted = TablePipeline::new("kind").standardize().fit(&train)?;
/// assert_eq!(fitted.width(), <Small>::INPUT_SHAPE.size());
///
/// let cpu = Cpu::new()?;
/// let model = Small::new(&cpu, 4, 7)?;
/// let path = std::env::temp_dir().join(format!("kiln-doc-prep-{}.st", std::process::id()));
/// checkpoint::save_with_preprocessing(&path, &model, &CheckpointExtra::default(), &fitted)?;
///
/// let restored = checkpoint::read_info(&path)?.preprocessing()?;
/// assert_eq!(restored.as_ref(), Some(&fitted));
///
/// checkpoint::save(&path, &model, &CheckpointExtra::default())?;
/// assert_eq!(checkpoint::read_info(&path)?.preprocessing()?, None);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// Those of [`save`].
pub fn save_with_preprocessing<B: Backend, M: Model<B>>(
    path: impl AsRef<Path>,
    model: &M,
    extra: &CheckpointExtra<'_, B>,
    preprocessing: &FittedPipeline,
) -> Result<()> {
    save_all(path.as_ref(), model, extra, None, Some(preprocessing))
}

fn save_all<B: Backend, M: Model<B>>(
    path: &Path,
    model: &M,
    extra: &CheckpointExtra<'_, B>,
    ema: Option<&Ema<B>>,
    preprocessing: Option<&FittedPipeline>,
) -> Result<()> {
    let weights = Weights::of(model)?;
    let preprocessing = preprocessing.map(FittedPipeline::to_json);
    let optimizer = extra
        .optimizer
        .map(|o| o.state(model.backend()))
        .transpose()?;
    let ema = ema.map(|e| e.state(model.backend())).transpose()?;
    let bytes = format::encode(&format::Contents {
        model: M::NAME,
        weights: &weights,
        epoch: extra.epoch,
        history: extra.history,
        optimizer: optimizer.as_ref(),
        ema: ema.as_ref(),
        preprocessing: preprocessing.as_deref(),
    })
    .map_err(|detail| checkpoint_error(path, detail))?;
    atomic::write_atomic(path, |w| w.write_all(&bytes))
}

/// Loads the weights of the checkpoint at `path` into `model`, and returns its
/// metadata. The file's optimizer state, if any, is returned in
/// [`CheckpointInfo::optimizer`] and not applied (see [`load`]).
///
/// Tensors are matched by name. Every name, shape and element type is checked before
/// anything is written: when any differ, `model` is left untouched.
///
/// # Errors
/// - [`Error::Io`] naming `path` when the file cannot be read (missing, unreadable);
/// - [`Error::Checkpoint`] naming `path` when it is not a valid safetensors file
///   (truncated, corrupt) or does not fit the model: the message lists every tensor
///   the file lacks, every tensor the model does not have, every shape that differs
///   (both shapes) and every tensor that is not `F32`; or when a tensor it would load
///   holds a NaN or an infinity (the tensor and the index; see
///   [`load_with_options`]).
pub fn load_weights<B: Backend, M: Model<B>>(
    path: impl AsRef<Path>,
    model: &mut M,
) -> Result<CheckpointInfo> {
    load(path, model, None)
}

/// Loads the checkpoint at `path` into `model` and, when given, `optimizer`, so that
/// training resumes where it stopped; returns the metadata (epoch, history).
///
/// Everything is checked before anything changes: on error neither `model` nor
/// `optimizer` is modified.
///
/// # Errors
/// Those of [`load_weights`], and [`Error::Checkpoint`] naming `path` when an
/// optimizer is given and the file holds no optimizer state, or state that does not
/// fit it (another rule, other tensors).
pub fn load<B: Backend, M: Model<B>>(
    path: impl AsRef<Path>,
    model: &mut M,
    optimizer: Option<&mut Optimizer<B>>,
) -> Result<CheckpointInfo> {
    load_all(
        path.as_ref(),
        model,
        optimizer,
        None,
        LoadOptions::default(),
    )
}

/// [`load`], restoring `ema` too from the averages that [`save_with_ema`] saved, so
/// that the average resumes where it stopped.
///
/// Everything is checked before anything changes: on error neither `model`,
/// `optimizer` nor `ema` is modified.
///
/// # Errors
/// Those of [`load`], and [`Error::Checkpoint`] naming `path` when the file holds no
/// average, or one that does not fit `ema` (other settings, other tensors).
pub fn load_with_ema<B: Backend, M: Model<B>>(
    path: impl AsRef<Path>,
    model: &mut M,
    optimizer: Option<&mut Optimizer<B>>,
    ema: &mut Ema<B>,
) -> Result<CheckpointInfo> {
    load_all(
        path.as_ref(),
        model,
        optimizer,
        Some(ema),
        LoadOptions::default(),
    )
}

/// How [`load_with_options`] treats what it reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Load NaN and infinite values too. Off by default: loading refuses a tensor
    /// that holds one, since a model with such a weight predicts NaN without a word.
    pub allow_non_finite: bool,
}

impl LoadOptions {
    /// Accepting non-finite values on or off.
    #[must_use]
    pub fn allow_non_finite(mut self, on: bool) -> Self {
        self.allow_non_finite = on;
        self
    }
}

/// [`load`] or [`load_with_ema`] (when `ema` is given) under `options`; with the
/// defaults, the same as they.
///
/// # Errors
/// Those of [`load`] and [`load_with_ema`].
pub fn load_with_options<B: Backend, M: Model<B>>(
    path: impl AsRef<Path>,
    model: &mut M,
    optimizer: Option<&mut Optimizer<B>>,
    ema: Option<&mut Ema<B>>,
    options: LoadOptions,
) -> Result<CheckpointInfo> {
    load_all(path.as_ref(), model, optimizer, ema, options)
}

/// The first non-finite value among the tensors a load would apply: the tensor's
/// name in the file, the value's index in it, and the value.
fn first_non_finite(
    decoded: &format::Decoded,
    optimizer: bool,
    ema: bool,
) -> Option<(String, usize, f32)> {
    let find = |values: &[f32]| values.iter().position(|v| !v.is_finite());
    for (name, _, values) in decoded.weights.iter() {
        if let Some(i) = find(values) {
            return Some((name.to_string(), i, values[i]));
        }
    }
    let optimizer = decoded.info.optimizer.as_ref().filter(|_| optimizer);
    let optimizer = optimizer.into_iter().flat_map(|s| &s.tensors);
    let ema = decoded.info.ema.as_ref().filter(|_| ema);
    let ema = ema.into_iter().flat_map(|s| &s.tensors);
    for ((name, values), prefix) in optimizer
        .map(|t| (t, "optimizer."))
        .chain(ema.map(|t| (t, "ema.")))
    {
        if let Some(i) = find(values) {
            return Some((format!("{prefix}{name}"), i, values[i]));
        }
    }
    None
}

fn load_all<B: Backend, M: Model<B>>(
    path: &Path,
    model: &mut M,
    optimizer: Option<&mut Optimizer<B>>,
    ema: Option<&mut Ema<B>>,
    options: LoadOptions,
) -> Result<CheckpointInfo> {
    let decoded = read(path)?;
    if !options.allow_non_finite
        && let Some((tensor, index, value)) =
            first_non_finite(&decoded, optimizer.is_some(), ema.is_some())
    {
        return Err(checkpoint_error(
            path,
            format!(
                "tensor `{tensor}` holds {value} at index {index}: a model with it would \
                 compute non-finite values; load it anyway with \
                 LoadOptions::default().allow_non_finite(true)"
            ),
        ));
    }
    let problems = decoded.weights.mismatches(model, &decoded.foreign)?;
    if !problems.is_empty() {
        let saved_as = match &decoded.info.model {
            Some(name) if name != M::NAME => format!(" (it was saved from model `{name}`)"),
            _ => String::new(),
        };
        return Err(checkpoint_error(
            path,
            format!(
                "does not fit model `{}`{saved_as}, {} difference{}: {}",
                M::NAME,
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
                problems.join("; ")
            ),
        ));
    }
    // The average is restored first and put back as it was if the optimizer's
    // state does not fit: each `load_state` changes nothing when it fails.
    let mut restored_ema = None;
    if let Some(ema) = ema {
        let Some(state) = &decoded.info.ema else {
            return Err(checkpoint_error(
                path,
                "holds no moving average (it was saved without one); load it with load, \
                 or save it with save_with_ema",
            ));
        };
        let unfit = |e: kiln_optim::Error| {
            checkpoint_error(path, format!("its moving average does not fit: {e}"))
        };
        let before = ema.state(model.backend()).map_err(unfit)?;
        ema.load_state(model, state).map_err(unfit)?;
        restored_ema = Some((ema, before));
    }
    if let Some(optimizer) = optimizer {
        let restored = match &decoded.info.optimizer {
            None => Err(
                "holds no optimizer state (it was saved without an optimizer); load \
                 the weights alone with load_weights"
                    .to_string(),
            ),
            Some(state) => restore_optimizer(optimizer, model, state),
        };
        if let Err(detail) = restored {
            if let Some((ema, before)) = restored_ema {
                ema.load_state(model, &before)?;
            }
            return Err(checkpoint_error(path, detail));
        }
    }
    decoded.weights.restore_checked(model)?;
    Ok(decoded.info)
}

/// Reads the metadata of the checkpoint at `path` without a model: the epoch to
/// resume at, the history, the model's name.
///
/// # Errors
/// As [`load_weights`] for an unreadable or invalid file.
pub fn read_info(path: impl AsRef<Path>) -> Result<CheckpointInfo> {
    Ok(read(path.as_ref())?.info)
}

/// Reads and decodes the file at `path`.
fn read(path: &Path) -> Result<format::Decoded> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    format::decode(&bytes).map_err(|detail| checkpoint_error(path, detail))
}

fn checkpoint_error(path: &Path, detail: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Restores `state` into `optimizer`, or explains why it does not fit and leaves
/// `optimizer` as it was.
fn restore_optimizer<B: Backend, M: Model<B>>(
    optimizer: &mut Optimizer<B>,
    model: &M,
    state: &OptimizerState,
) -> std::result::Result<(), String> {
    let algorithm = *optimizer.algorithm();
    if state.algorithm != algorithm.name() {
        return Err(format!(
            "holds the state of a {} optimizer, not of {}",
            state.algorithm,
            algorithm.name()
        ));
    }
    let unfit = |e: kiln_optim::Error| format!("its optimizer state does not fit: {e}");
    if state.step == 0 && state.tensors.is_empty() && optimizer.iterations() != 0 {
        return Err(
            "its optimizer had made no update yet; restore it into a fresh optimizer".into(),
        );
    }
    // `load_state` checks everything before it changes the optimizer.
    optimizer.load_state(model, state).map_err(unfit)
}
