//! [`Weights`]: a model's parameters copied to the host, keyed by name, and the
//! comparison of such a set with a model.

use std::collections::HashMap;

use kiln_kernels::{Backend, Trainable};
use kiln_nn::Model;
use kiln_shape::Shape;

use crate::{Error, Result};

/// Calls `f` on every tensor a checkpoint holds: the trainable ones, then those saved
/// but not trained (running statistics), as `(layer, name, shape, values)`.
fn each_tensor<'a, B: Backend, M: Trainable<B>>(
    model: &'a M,
    mut f: impl FnMut(&'static str, &'static str, Shape, &'a B::Buffer) -> kiln_kernels::Result<()>,
) -> kiln_kernels::Result<()> {
    model.parameters(&mut |p| f(p.layer, p.name, p.shape, p.value))?;
    model.state(&mut |s| f(s.layer, s.name, s.shape, s.value))
}

/// Whether `key` is `layer.name`.
fn key_is(key: &str, layer: &str, name: &str) -> bool {
    key.strip_prefix(layer)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|rest| rest == name)
}

/// One named tensor on the host.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    /// `conv1.weight`.
    pub(crate) key: String,
    /// Its dimensions.
    pub(crate) shape: Vec<usize>,
    /// Its values, row-major.
    pub(crate) values: Vec<f32>,
}

/// A tensor of a file that kiln cannot load: its element type is not `F32`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Foreign {
    /// Its name.
    pub(crate) key: String,
    /// Its dimensions.
    pub(crate) shape: Vec<usize>,
    /// Its element type, as safetensors names it (`F64`, `BF16`).
    pub(crate) dtype: String,
}

/// A model's tensors on the host, in the model's order, each with its name
/// (`conv1.weight`) and shape: the trainable ones, then those saved but not trained
/// (a normalisation layer's running statistics).
///
/// What a checkpoint holds, in memory: take a snapshot with [`Weights::of`] and put
/// it back with [`Weights::restore`], to keep the best epoch's weights for instance.
///
/// ```
/// use kiln::prelude::*;
/// use kiln_train::Weights;
///
/// kiln::model! {
///     /// Two dense layers.
///     pub struct Small {
///         input: [4],
///         hidden: Dense(8, relu),
///         out: Dense(2),
///     }
/// }
///
/// let cpu = Cpu::new()?;
/// let mut model = Small::new(&cpu, 1, 7)?;
/// let best = Weights::of(&model)?;
/// let names: Vec<&str> = best.names().collect();
/// assert_eq!(names, ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]);
/// assert_eq!(best.get("out.weight").map(|(shape, _)| shape), Some(&[8, 2][..]));
///
/// let other = Weights::of(&Small::new(&cpu, 1, 8)?)?;
/// other.restore(&mut model)?;
/// best.restore(&mut model)?;
/// assert_eq!(Weights::of(&model)?, best);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Weights {
    entries: Vec<Entry>,
}

impl Weights {
    /// Copies every tensor of `model` to the host.
    pub fn of<B: Backend, M: Model<B>>(model: &M) -> Result<Self> {
        let mut weights = Self::default();
        weights.copy_from(model)?;
        Ok(weights)
    }

    /// Replaces the snapshot with `model`'s current tensors, reusing the host memory
    /// when the names and sizes are those already held (the same model): a snapshot
    /// taken every epoch allocates only the first time.
    pub fn copy_from<B: Backend, M: Model<B>>(&mut self, model: &M) -> Result<()> {
        let backend = model.backend();
        let entries = &mut self.entries;
        let mut index = 0;
        each_tensor(model, |layer, name, shape, value| {
            match entries.get_mut(index) {
                Some(e) if key_is(&e.key, layer, name) && e.values.len() == shape.size() => {
                    backend.download(value, &mut e.values)?;
                    shape.dims().clone_into(&mut e.shape);
                }
                _ => {
                    let entry = Entry {
                        key: format!("{layer}.{name}"),
                        shape: shape.dims().to_vec(),
                        values: backend.to_host(value, shape.size())?,
                    };
                    if index < entries.len() {
                        entries[index] = entry;
                    } else {
                        entries.push(entry);
                    }
                }
            }
            index += 1;
            Ok(())
        })?;
        entries.truncate(index);
        Ok(())
    }

    /// Writes the snapshot into `model`. Every name and shape is checked first; when
    /// any differ the model is left untouched and the error lists every difference.
    pub fn restore<B: Backend, M: Model<B>>(&self, model: &mut M) -> Result<()> {
        let problems = self.mismatches(model, &[])?;
        if !problems.is_empty() {
            return Err(Error::Config(format!(
                "the weights do not fit model `{}`: {}",
                M::NAME,
                problems.join("; ")
            )));
        }
        self.restore_checked(model)
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no tensors (a model without parameters).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tensor names, in the model's order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.key.as_str())
    }

    /// The shape and values of the tensor named `key` (`conv1.weight`).
    pub fn get(&self, key: &str) -> Option<(&[usize], &[f32])> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| (e.shape.as_slice(), e.values.as_slice()))
    }

    /// Every tensor: name, shape and values, in the model's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[usize], &[f32])> {
        self.entries
            .iter()
            .map(|e| (e.key.as_str(), e.shape.as_slice(), e.values.as_slice()))
    }

    pub(crate) fn from_entries(entries: Vec<Entry>) -> Self {
        Self { entries }
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Every way in which these weights (and the `foreign` tensors beside them) fail
    /// to fit `model`, one line each: tensors the model has and the weights lack,
    /// tensors the model does not have, shapes that differ, element types kiln does
    /// not load. Empty when they fit.
    pub(crate) fn mismatches<B: Backend, M: Model<B>>(
        &self,
        model: &M,
        foreign: &[Foreign],
    ) -> Result<Vec<String>> {
        let mut unmatched: HashMap<&str, &Entry> =
            self.entries.iter().map(|e| (e.key.as_str(), e)).collect();
        let mut foreign_left: HashMap<&str, &Foreign> =
            foreign.iter().map(|f| (f.key.as_str(), f)).collect();
        let mut problems = Vec::new();
        each_tensor(model, |layer, name, shape, _| {
            let key = format!("{layer}.{name}");
            let dims = shape.dims();
            if let Some(f) = foreign_left.remove(key.as_str()) {
                problems.push(format!(
                    "{key} is {} {}, kiln loads F32 only (convert it with .float() before \
                     saving)",
                    f.dtype,
                    Dims(&f.shape)
                ));
            } else if let Some(e) = unmatched.remove(key.as_str()) {
                if e.shape != dims {
                    problems.push(format!(
                        "{key} has shape {} in the model but {} in the file",
                        Dims(dims),
                        Dims(&e.shape)
                    ));
                }
            } else {
                problems.push(format!("{key} {} is missing", Dims(dims)));
            }
            Ok(())
        })?;
        // In the file's order, so that the message is stable.
        for e in &self.entries {
            if unmatched.contains_key(e.key.as_str()) {
                problems.push(format!("{} {} is not in the model", e.key, Dims(&e.shape)));
            }
        }
        for f in foreign {
            if foreign_left.contains_key(f.key.as_str()) {
                problems.push(format!(
                    "{} {} {} is not in the model",
                    f.key,
                    f.dtype,
                    Dims(&f.shape)
                ));
            }
        }
        Ok(problems)
    }

    /// Uploads every tensor into `model`, whose names and shapes were checked.
    pub(crate) fn restore_checked<B: Backend, M: Model<B>>(&self, model: &mut M) -> Result<()> {
        let by_key: HashMap<&str, &Entry> =
            self.entries.iter().map(|e| (e.key.as_str(), e)).collect();
        let backend = model.backend().clone();
        // Present and of the right size: `mismatches` found nothing.
        let upload = |key: String, value: &mut B::Buffer| match by_key.get(key.as_str()) {
            Some(e) => backend.upload(&e.values, value),
            None => Ok(()),
        };
        model.visit_parameters(&mut |p| upload(p.key(), p.value))?;
        model.visit_state(&mut |s| upload(s.key(), s.value))?;
        Ok(())
    }
}

/// Writes dimensions as `[3, 3, 1, 4]`.
struct Dims<'a>(&'a [usize]);

impl std::fmt::Display for Dims<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
