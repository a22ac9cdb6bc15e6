//! The [`Layer`] trait that every layer implements and the generated models call.

use kiln_kernels::ops::InputGrad;
use kiln_kernels::rng::Rng;
use kiln_kernels::{
    Backend, GradAt, ViewParams, ViewState, VisitParams, VisitState, zero_gradients,
};
use kiln_shape::{Shape, Spec};

use crate::{Error, Result};

/// Training or inference: dropout is active only in [`Mode::Train`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: dropout drops, and backward may follow.
    Train,
    /// Inference: dropout is the identity.
    Eval,
}

/// One row of a model's layer table: a layer, or a block of layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer's name in the model, qualified inside blocks (`res2.shortcut`).
    pub name: &'static str,
    /// Its kind (`Conv2d`, `Dense`; `Residual`, `Concat`, `Sequential` for a block).
    pub kind: &'static str,
    /// The output shape of one sample.
    pub output_shape: Shape,
    /// Trainable parameters (a block's: those of the layers inside it).
    pub parameters: usize,
    /// Values saved but not trained, such as running statistics (Keras's
    /// non-trainable parameters).
    pub state: usize,
    /// How many blocks it is inside: 0 at the top of the model.
    pub depth: usize,
}

/// What a layer's backward pass is given.
///
/// The model's workspace keeps a forward value only as long as something reads it,
/// so `x` and `y` are there only when the kind's
/// [`Traits`](kiln_shape::Traits) say that its backward pass reads them.
#[derive(Debug)]
pub struct Backward<'a, B: Backend> {
    /// The forward's input, when kept.
    pub x: Option<&'a B::Buffer>,
    /// The forward's output, when kept.
    pub y: Option<&'a B::Buffer>,
    /// The gradient at the output (at the pre-activation when `at` says so); the
    /// layer may overwrite it.
    pub dy: &'a mut B::Buffer,
    /// Where the input's gradient goes, or `None` when nothing before the layer needs
    /// it (a first layer).
    pub dx: Option<InputGrad<'a, B::Buffer>>,
    /// Samples in the batch.
    pub batch: usize,
    /// Where `dy` stands.
    pub at: GradAt,
    /// The input is the output of a ReLU, and `dx` is wanted at that ReLU's input
    /// (only for kinds whose traits say that they absorb a ReLU below).
    pub through_relu_below: bool,
}

impl<'a, B: Backend> Backward<'a, B> {
    /// The forward's input, or an error naming `layer` when the model did not keep it.
    pub fn input(&self, layer: &'static str) -> Result<&'a B::Buffer> {
        self.x.ok_or(Error::NotKept {
            layer,
            value: "input",
        })
    }

    /// The forward's output, or an error naming `layer` when the model did not keep it.
    pub fn output(&self, layer: &'static str) -> Result<&'a B::Buffer> {
        self.y.ok_or(Error::NotKept {
            layer,
            value: "output",
        })
    }
}

/// A layer: built from its spec and input shape, then run forward and backward on
/// buffers that the model owns.
///
/// Buffers hold a batch in sample-major order; `batch` says how many samples of the
/// (possibly longer) buffers are in use, up to the `max_batch` the layer was built for.
pub trait Layer<B: Backend>: Send + Sized {
    /// The spec the layer is built from (its kind's, in `kiln-shape`).
    type Spec: Spec;

    /// Builds the layer for inputs of shape `input` and batches up to `max_batch`,
    /// initialising parameters from `rng` (Keras's defaults: glorot-uniform kernels,
    /// zero biases).
    fn build(
        backend: &B,
        spec: &Self::Spec,
        input: Shape,
        max_batch: usize,
        rng: &mut Rng,
    ) -> Result<Self>;

    /// `y = layer(x)` for `batch` samples.
    fn forward(
        &mut self,
        backend: &B,
        x: &B::Buffer,
        y: &mut B::Buffer,
        batch: usize,
        mode: Mode,
    ) -> Result<()>;

    /// Accumulates parameter gradients and writes (or adds to) the input gradient.
    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()>;

    /// Sets the accumulated parameter gradients (those
    /// [`Layer::visit_parameters`] shows) to zero.
    fn zero_grad(&mut self, backend: &B) -> Result<()> {
        Ok(zero_gradients(backend, |f| self.visit_parameters("", f))?)
    }

    /// Calls `f` on each trainable tensor, tagged with the layer name `layer`. The
    /// tensors stay borrowed for as long as the layer is, so `f` may keep them to
    /// update several in one go.
    fn visit_parameters<'a>(
        &'a mut self,
        layer: &'static str,
        f: VisitParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let _ = (layer, f);
        Ok(())
    }

    /// Calls `f` on each trainable tensor, read-only (and as long-lived as the layer's
    /// borrow).
    fn parameters<'a>(
        &'a self,
        layer: &'static str,
        f: ViewParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let _ = (layer, f);
        Ok(())
    }

    /// Calls `f` on each tensor that is saved but not trained (running statistics).
    fn visit_state<'a>(
        &'a mut self,
        layer: &'static str,
        f: VisitState<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let _ = (layer, f);
        Ok(())
    }

    /// Calls `f` on each tensor that is saved but not trained, read-only.
    fn state<'a>(
        &'a self,
        layer: &'static str,
        f: ViewState<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let _ = (layer, f);
        Ok(())
    }
}

/// Validates `spec` and computes its output shape for `input`: the checks every layer
/// runs first, with the rules the macro ran at compile time.
pub(crate) fn checked_output(spec: &impl Spec, input: Shape) -> Result<Shape> {
    let problems = spec.validate();
    if !problems.is_empty() {
        let detail = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::Spec {
            kind: spec.kind_name(),
            detail,
        });
    }
    spec.output_for(&input).map_err(|source| Error::Shape {
        kind: spec.kind_name(),
        source,
    })
}

/// Refuses an input gradient to add to, for layers whose backward op overwrites it
/// (their traits do not offer accumulation, so a model never asks).
pub(crate) fn overwrite_only<'a, T>(
    layer: &'static str,
    dx: Option<InputGrad<'a, T>>,
) -> Result<Option<&'a mut T>> {
    match dx {
        Some(g) if g.accumulate => Err(Error::CannotAccumulate { layer }),
        Some(g) => Ok(Some(g.buffer)),
        None => Ok(None),
    }
}
