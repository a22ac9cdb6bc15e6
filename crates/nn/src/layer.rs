//! The [`Layer`] trait that every layer implements and the generated models call.

use kiln_kernels::Backend;
use kiln_kernels::rng::Rng;
use kiln_shape::{LayerSpec, Shape};

use crate::{Error, Result};

/// Training or inference: dropout is active only in [`Mode::Train`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: dropout drops, and backward may follow.
    Train,
    /// Inference: dropout is the identity.
    Eval,
}

/// Which gradient a model's `backward` receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradAt {
    /// The gradient with respect to the model's output.
    Output,
    /// The gradient with respect to the last layer's pre-activation (its logits): the
    /// last activation's backward is skipped. Cross-entropy after softmax passes
    /// `p - y` here, the fused and stable form.
    PreActivation,
}

/// One row of a model's layer table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer's name in the model.
    pub name: &'static str,
    /// Its kind (`Conv2d`, `Dense`, ...).
    pub kind: &'static str,
    /// The output shape of one sample.
    pub output_shape: Shape,
    /// Trainable parameters.
    pub parameters: usize,
}

/// A trainable tensor, mutably, with its gradient.
#[derive(Debug)]
pub struct ParamMut<'a, B: Backend> {
    /// The layer's name in the model (`conv1`).
    pub layer: &'static str,
    /// The tensor's name in the layer (`weight`, `bias`).
    pub name: &'static str,
    /// The tensor's shape (a convolution kernel is `[kh, kw, c_in, c_out]`).
    pub shape: Shape,
    /// The values.
    pub value: &'a mut B::Buffer,
    /// The accumulated gradient.
    pub grad: &'a mut B::Buffer,
}

/// A trainable tensor, read-only, with its gradient.
#[derive(Debug)]
pub struct ParamRef<'a, B: Backend> {
    /// The layer's name in the model (`conv1`).
    pub layer: &'static str,
    /// The tensor's name in the layer (`weight`, `bias`).
    pub name: &'static str,
    /// The tensor's shape.
    pub shape: Shape,
    /// The values.
    pub value: &'a B::Buffer,
    /// The accumulated gradient.
    pub grad: &'a B::Buffer,
}

impl<B: Backend> ParamMut<'_, B> {
    /// `layer.name`, the key used in checkpoints (`conv1.weight`).
    pub fn key(&self) -> String {
        format!("{}.{}", self.layer, self.name)
    }
}

impl<B: Backend> ParamRef<'_, B> {
    /// `layer.name`, the key used in checkpoints (`conv1.weight`).
    pub fn key(&self) -> String {
        format!("{}.{}", self.layer, self.name)
    }
}

/// A layer: built from its spec and input shape, then run forward and backward on
/// buffers that the model owns.
///
/// Buffers hold a batch in sample-major order; `batch` says how many samples of the
/// (possibly longer) buffers are in use, up to the `max_batch` the layer was built for.
pub trait Layer<B: Backend>: Send + Sized {
    /// Builds the layer for inputs of shape `input` and batches up to `max_batch`,
    /// initialising parameters from `rng` (Keras's defaults: glorot-uniform kernels,
    /// zero biases).
    fn build(
        backend: &B,
        spec: &LayerSpec,
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

    /// Accumulates parameter gradients and writes `dx` (unless `None`: the first layer's
    /// input gradient is never needed). `x` and `y` are the forward's input and output;
    /// `dy` is the gradient at the output (at the pre-activation when `at` says so)
    /// and may be overwritten.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &mut self,
        backend: &B,
        x: &B::Buffer,
        y: &B::Buffer,
        dy: &mut B::Buffer,
        dx: Option<&mut B::Buffer>,
        batch: usize,
        at: GradAt,
    ) -> Result<()>;

    /// Sets the accumulated parameter gradients (those
    /// [`Layer::visit_parameters`] shows) to zero.
    fn zero_grad(&mut self, backend: &B) -> Result<()> {
        crate::zero_gradients(backend, |f| self.visit_parameters("", f))
    }

    /// Calls `f` on each trainable tensor, tagged with the layer name `layer`. The
    /// tensors stay borrowed for as long as the layer is, so `f` may keep them to
    /// update several in one go.
    fn visit_parameters<'a>(
        &'a mut self,
        layer: &'static str,
        f: &mut dyn FnMut(ParamMut<'a, B>) -> Result<()>,
    ) -> Result<()> {
        let _ = (layer, f);
        Ok(())
    }

    /// Calls `f` on each trainable tensor, read-only (and as long-lived as the layer's
    /// borrow).
    fn parameters<'a>(
        &'a self,
        layer: &'static str,
        f: &mut dyn FnMut(ParamRef<'a, B>) -> Result<()>,
    ) -> Result<()> {
        let _ = (layer, f);
        Ok(())
    }
}

/// Validates `spec` and computes its output shape for `input`: the checks every layer
/// runs first, with the rules the macro ran at compile time.
pub(crate) fn checked_output(spec: &LayerSpec, input: Shape) -> Result<Shape> {
    let problems = spec.validate();
    if !problems.is_empty() {
        let detail = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::Spec {
            kind: spec.kind(),
            detail,
        });
    }
    spec.output_shape(&input).map_err(|source| Error::Shape {
        kind: spec.kind(),
        source,
    })
}
