//! [`Loss`]: which loss and its options, as a user picks it (Keras's `loss=` argument).

use kiln_kernels::ops::loss::LossKind;

/// How per-sample values become the loss that is minimised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean over the batch: `sum(w_i * l_i) / batch` (Keras's
    /// `sum_over_batch_size`, PyTorch's `mean` without class weights).
    #[default]
    Mean,
    /// `sum(w_i * l_i)`.
    Sum,
    /// `sum(w_i * l_i) / sum(w_i)`: PyTorch's `mean` when `weight=` is given.
    WeightedMean,
    /// No reduction: each sample's value is kept
    /// ([`Criterion::per_sample`](crate::Criterion::per_sample)); the gradient is that
    /// of their sum.
    None,
}

/// A loss and its options.
///
/// Constructors are named as in Keras. Options are set by chaining:
///
/// ```
/// use kiln_losses::{Loss, Reduction};
///
/// let loss = Loss::categorical_crossentropy()
///     .from_logits(true)
///     .label_smoothing(0.1)
///     .reduction(Reduction::Sum);
/// assert_eq!(loss.name(), "categorical_crossentropy");
/// ```
///
/// Regression and binary losses average over a sample's values; categorical losses
/// sum over its classes. Probabilities are clipped to `[epsilon, 1 - epsilon]` (Keras's
/// `1e-7`) before their logarithm, except in the fused path, where a model ending in
/// `softmax` (or `sigmoid`) meets (sparse) categorical (or binary) cross-entropy: then
/// the gradient is `p - y` with respect to the logits, as stable as `from_logits`.
#[derive(Clone, Debug, PartialEq)]
pub struct Loss {
    pub(crate) kind: LossKind,
    pub(crate) from_logits: bool,
    pub(crate) label_smoothing: f32,
    pub(crate) delta: f32,
    pub(crate) epsilon: f32,
    pub(crate) reduction: Reduction,
    pub(crate) class_weights: Option<Vec<f32>>,
}

impl Loss {
    fn of(kind: LossKind) -> Self {
        Self {
            kind,
            from_logits: false,
            label_smoothing: 0.0,
            delta: 1.0,
            epsilon: 1e-7,
            reduction: Reduction::Mean,
            class_weights: None,
        }
    }

    /// Mean squared error, `mean((y_pred - y)^2)`.
    pub fn mean_squared_error() -> Self {
        Self::of(LossKind::MeanSquaredError)
    }

    /// Mean absolute error, `mean(|y_pred - y|)`.
    pub fn mean_absolute_error() -> Self {
        Self::of(LossKind::MeanAbsoluteError)
    }

    /// Huber loss: `0.5 d^2` where `|d| < delta`, `delta * (|d| - delta / 2)` beyond.
    pub fn huber(delta: f32) -> Self {
        Self {
            delta,
            ..Self::of(LossKind::Huber)
        }
    }

    /// `mean(log(cosh(y_pred - y)))`: like MSE near zero, like MAE far from it.
    pub fn log_cosh() -> Self {
        Self::of(LossKind::LogCosh)
    }

    /// Binary cross-entropy on probabilities in `[0, 1]` (or logits, with
    /// [`Loss::from_logits`]). Targets are probabilities, or class labels 0 and 1 for a
    /// single output.
    pub fn binary_crossentropy() -> Self {
        Self::of(LossKind::BinaryCrossentropy)
    }

    /// Cross-entropy against one row of class probabilities a sample (one-hot labels).
    pub fn categorical_crossentropy() -> Self {
        Self::of(LossKind::CategoricalCrossentropy)
    }

    /// Cross-entropy against one integer class label a sample.
    pub fn sparse_categorical_crossentropy() -> Self {
        Self::of(LossKind::SparseCategoricalCrossentropy)
    }

    /// Whether the model's output holds logits (raw scores) rather than
    /// probabilities; cross-entropies only.
    #[must_use]
    pub fn from_logits(mut self, from_logits: bool) -> Self {
        self.from_logits = from_logits;
        self
    }

    /// Label smoothing `s` in `[0, 1)`: targets become `y * (1 - s) + s / classes`
    /// (binary: `s / 2`); cross-entropies only.
    #[must_use]
    pub fn label_smoothing(mut self, smoothing: f32) -> Self {
        self.label_smoothing = smoothing;
        self
    }

    /// How per-sample values are reduced.
    #[must_use]
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// One weight a class: each sample's value is multiplied by the weight of its
    /// class (its label; for one-hot targets the largest entry). Combine with
    /// [`Reduction::WeightedMean`] for PyTorch's `weight=`.
    #[must_use]
    pub fn class_weights(mut self, weights: impl Into<Vec<f32>>) -> Self {
        self.class_weights = Some(weights.into());
        self
    }

    /// The clipping of probabilities before their logarithm (Keras's `1e-7`).
    #[must_use]
    pub fn epsilon(mut self, epsilon: f32) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// Keras's name of the loss (`sparse_categorical_crossentropy`).
    pub fn name(&self) -> &'static str {
        match self.kind {
            LossKind::MeanSquaredError => "mean_squared_error",
            LossKind::MeanAbsoluteError => "mean_absolute_error",
            LossKind::Huber => "huber",
            LossKind::LogCosh => "log_cosh",
            LossKind::BinaryCrossentropy => "binary_crossentropy",
            LossKind::CategoricalCrossentropy => "categorical_crossentropy",
            LossKind::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
        }
    }

    /// The kernel's loss kind.
    pub fn kind(&self) -> LossKind {
        self.kind
    }

    /// The reduction.
    pub fn reduction_kind(&self) -> Reduction {
        self.reduction
    }

    /// Whether the output is taken as logits.
    pub fn is_from_logits(&self) -> bool {
        self.from_logits
    }
}
