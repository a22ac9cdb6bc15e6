//! Losses: each sample's value and the gradient of the reduced loss, in one pass over
//! the model's output.
//!
//! A row of `features` values is one sample. Regression and binary losses average over
//! a sample's features (as Keras does); categorical losses sum over its classes. Every
//! sample's value is multiplied by its weight (sample and class weights, combined by
//! the caller), and the gradient is scaled by [`LossParams::grad_scale`], which carries
//! the reduction (`1 / batch` for a mean, `1` for a sum).

pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
#[cfg(test)]
mod tests;

use crate::Result;
use crate::storage::Storage;

/// Which loss; the numbering is shared with the GPU kernels.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Mean squared error.
    MeanSquaredError = 0,
    /// Mean absolute error.
    MeanAbsoluteError = 1,
    /// Huber: quadratic within [`LossParams::delta`] of the target, linear beyond.
    Huber = 2,
    /// `log(cosh(prediction - target))`.
    LogCosh = 3,
    /// Binary cross-entropy; targets are probabilities in `[0, 1]`.
    BinaryCrossentropy = 4,
    /// Categorical cross-entropy; targets are one row of class probabilities
    /// (one-hot, usually).
    CategoricalCrossentropy = 5,
    /// Categorical cross-entropy on integer labels, stored as `f32` (one a sample).
    SparseCategoricalCrossentropy = 6,
}

impl LossKind {
    /// Whether targets hold one class index a sample rather than one value a feature.
    pub fn sparse_targets(self) -> bool {
        self == Self::SparseCategoricalCrossentropy
    }

    /// Whether the loss compares probabilities (and so may take logits instead).
    pub fn is_crossentropy(self) -> bool {
        matches!(
            self,
            Self::BinaryCrossentropy
                | Self::CategoricalCrossentropy
                | Self::SparseCategoricalCrossentropy
        )
    }
}

/// What the model's output holds, which decides the formula and what the gradient is
/// taken with respect to.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossInput {
    /// Predictions as they are (values, or probabilities the loss clips to
    /// `[epsilon, 1 - epsilon]`); the gradient is with respect to them.
    Prediction = 0,
    /// Raw scores: cross-entropies apply a stable log-softmax (or log-sigmoid)
    /// themselves; the gradient is with respect to the scores.
    Logits = 1,
    /// Probabilities made by the model's own last softmax (categorical) or sigmoid
    /// (binary); the gradient is with respect to the scores before that activation,
    /// `p * sum(y) - y`, so the model's backward pass skips the activation.
    Activated = 2,
}

/// One loss call over `batch` samples of `features` values.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossParams {
    /// Which loss.
    pub kind: LossKind,
    /// What the output holds.
    pub input: LossInput,
    /// Samples.
    pub batch: u32,
    /// Values a sample (classes, for the categorical losses).
    pub features: u32,
    /// 1 when a per-sample weight buffer is given.
    pub weighted: u32,
    /// Label smoothing for the cross-entropies: targets become
    /// `y * (1 - s) + s / classes` (categorical) or `y * (1 - s) + s / 2` (binary).
    pub label_smoothing: f32,
    /// Huber's threshold.
    pub delta: f32,
    /// Probabilities are clipped to `[epsilon, 1 - epsilon]` before their logarithm.
    pub epsilon: f32,
    /// Multiplies every gradient value: the reduction's scale.
    pub grad_scale: f32,
}

impl LossParams {
    /// A call of `kind` on predictions, unweighted, gradients of the mean.
    pub fn new(kind: LossKind, batch: u32, features: u32) -> Self {
        Self {
            kind,
            input: LossInput::Prediction,
            batch,
            features,
            weighted: 0,
            label_smoothing: 0.0,
            delta: 1.0,
            epsilon: 1e-7,
            grad_scale: 1.0 / batch.max(1) as f32,
        }
    }

    /// Target values a sample: one label, or one value a feature.
    pub fn target_len(&self) -> usize {
        if self.kind.sparse_targets() {
            self.batch as usize
        } else {
            self.batch as usize * self.features as usize
        }
    }
}

/// The loss op.
pub trait LossKernel: Storage {
    /// Writes `weight[i] * loss(sample i)` into `per_sample[i]` and the scaled gradient
    /// into `grad` (`batch * features` values).
    ///
    /// A non-finite output is an [`Error::NonFinite`](crate::Error::NonFinite) naming
    /// its index; a label that is not a class index is an
    /// [`Error::InvalidTarget`](crate::Error::InvalidTarget).
    fn loss(
        &self,
        p: &LossParams,
        output: &Self::Buffer,
        target: &Self::Buffer,
        weights: Option<&Self::Buffer>,
        per_sample: &mut Self::Buffer,
        grad: &mut Self::Buffer,
    ) -> Result<()>;
}
