//! The vocabulary that layers, losses, optimizers and checkpoints share about a
//! model's tensors: trainable parameters with their gradients ([`ParamMut`],
//! [`ParamRef`]), state that is saved but not trained ([`StateMut`], [`StateRef`]:
//! BatchNorm's running statistics), what holds them ([`Trainable`]), and where a
//! gradient handed to a model's backward pass stands ([`GradAt`]).
//!
//! It lives below the layers so that a loss sees only outputs and targets, and an
//! optimizer only tensors: neither depends on `kiln-nn`.

use kiln_shape::Shape;

use crate::{Backend, Group, Result};

/// Which gradient a model's backward pass receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradAt {
    /// The gradient with respect to the model's output.
    Output,
    /// The gradient with respect to the last layer's pre-activation (its logits): the
    /// last activation's backward is skipped. Cross-entropy after softmax passes
    /// `p - y` here, the fused and stable form.
    PreActivation,
}

/// A trainable tensor, mutably, with its gradient.
#[derive(Debug)]
pub struct ParamMut<'a, B: Backend> {
    /// The layer's name in the model (`conv1`, or `res2.shortcut` inside a block).
    pub layer: &'static str,
    /// The layer's kind (`Conv2d`, `BatchNorm`): what optimizer groups select by,
    /// beside the names.
    pub kind: &'static str,
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
    /// The layer's name in the model (`conv1`, or `res2.shortcut` inside a block).
    pub layer: &'static str,
    /// The layer's kind (`Conv2d`, `BatchNorm`): what optimizer groups select by,
    /// beside the names.
    pub kind: &'static str,
    /// The tensor's name in the layer (`weight`, `bias`).
    pub name: &'static str,
    /// The tensor's shape.
    pub shape: Shape,
    /// The values.
    pub value: &'a B::Buffer,
    /// The accumulated gradient.
    pub grad: &'a B::Buffer,
}

/// A tensor that is saved and restored with the weights but never trained (a
/// normalisation layer's running mean), mutably.
#[derive(Debug)]
pub struct StateMut<'a, B: Backend> {
    /// The layer's name in the model.
    pub layer: &'static str,
    /// The tensor's name in the layer (`running_mean`).
    pub name: &'static str,
    /// The tensor's shape.
    pub shape: Shape,
    /// The values.
    pub value: &'a mut B::Buffer,
}

/// A tensor that is saved with the weights but never trained, read-only.
#[derive(Debug)]
pub struct StateRef<'a, B: Backend> {
    /// The layer's name in the model.
    pub layer: &'static str,
    /// The tensor's name in the layer (`running_mean`).
    pub name: &'static str,
    /// The tensor's shape.
    pub shape: Shape,
    /// The values.
    pub value: &'a B::Buffer,
}

/// `layer.name`, the key of a tensor in checkpoints (`conv1.weight`).
fn key(layer: &str, name: &str) -> String {
    format!("{layer}.{name}")
}

impl<B: Backend> ParamMut<'_, B> {
    /// `layer.name`, the key used in checkpoints (`conv1.weight`).
    pub fn key(&self) -> String {
        key(self.layer, self.name)
    }
}

impl<B: Backend> ParamRef<'_, B> {
    /// `layer.name`, the key used in checkpoints (`conv1.weight`).
    pub fn key(&self) -> String {
        key(self.layer, self.name)
    }
}

impl<B: Backend> StateMut<'_, B> {
    /// `layer.name`, the key used in checkpoints (`bn1.running_mean`).
    pub fn key(&self) -> String {
        key(self.layer, self.name)
    }
}

impl<B: Backend> StateRef<'_, B> {
    /// `layer.name`, the key used in checkpoints (`bn1.running_mean`).
    pub fn key(&self) -> String {
        key(self.layer, self.name)
    }
}

/// A visitor of trainable tensors, lending them for `'a`.
pub type VisitParams<'v, 'a, B> = &'v mut dyn FnMut(ParamMut<'a, B>) -> Result<()>;
/// A read-only visitor of trainable tensors.
pub type ViewParams<'v, 'a, B> = &'v mut dyn FnMut(ParamRef<'a, B>) -> Result<()>;
/// A visitor of saved, untrained tensors, lending them for `'a`.
pub type VisitState<'v, 'a, B> = &'v mut dyn FnMut(StateMut<'a, B>) -> Result<()>;
/// A read-only visitor of saved, untrained tensors.
pub type ViewState<'v, 'a, B> = &'v mut dyn FnMut(StateRef<'a, B>) -> Result<()>;

/// What an optimizer updates and a checkpoint saves: a backend, trainable tensors with
/// their gradients, and state that is saved but never trained.
///
/// Every model that `model!` generates is `Trainable`; implement it for parameters
/// that live elsewhere.
pub trait Trainable<B: Backend> {
    /// The backend the tensors live on.
    fn backend(&self) -> &B;

    /// Calls `f` on every trainable tensor, read-only, always in the same order.
    fn parameters<'a>(&'a self, f: ViewParams<'_, 'a, B>) -> Result<()>;

    /// Calls `f` on every trainable tensor, in the order of
    /// [`Trainable::parameters`]. The tensors stay borrowed as long as `self` is, so
    /// that `f` may keep them and update several in one go.
    fn visit_parameters<'a>(&'a mut self, f: VisitParams<'_, 'a, B>) -> Result<()>;

    /// Calls `f` on every tensor that is saved but not trained, read-only. None by
    /// default.
    fn state<'a>(&'a self, f: ViewState<'_, 'a, B>) -> Result<()> {
        let _ = f;
        Ok(())
    }

    /// Calls `f` on every tensor that is saved but not trained, in the order of
    /// [`Trainable::state`]. None by default.
    fn visit_state<'a>(&'a mut self, f: VisitState<'_, 'a, B>) -> Result<()> {
        let _ = f;
        Ok(())
    }

    /// Sets every parameter gradient to zero (a GPU zeroes up to sixteen tensors in
    /// one launch).
    fn zero_grad(&mut self) -> Result<()>
    where
        Self: Sized,
    {
        let backend = self.backend().clone();
        zero_gradients(&backend, |f| self.visit_parameters(f))
    }
}

/// Gradients zeroed in one call (a GPU zeroes up to sixteen in one launch).
const ZERO_GROUP: usize = 16;

/// Sets to zero every gradient that `visit` shows (a model's or a layer's
/// `visit_parameters`), in groups: on a GPU, one launch for up to sixteen tensors
/// instead of one each, and no allocation.
pub fn zero_gradients<'a, B: Backend>(
    backend: &B,
    visit: impl FnOnce(VisitParams<'_, 'a, B>) -> Result<()>,
) -> Result<()> {
    let mut group = Group::<(&'a mut B::Buffer, usize), ZERO_GROUP>::default();
    visit(&mut |p| group.push((p.grad, p.shape.size()), |g| backend.fill_many(g, 0.0)))?;
    group.flush(|g| backend.fill_many(g, 0.0))
}
