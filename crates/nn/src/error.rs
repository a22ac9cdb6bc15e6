//! The errors of `kiln-nn`.

use kiln_shape::{Shape, ShapeError};

/// What went wrong building or running a layer or a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A backend op failed.
    #[error(transparent)]
    Kernel(#[from] kiln_kernels::Error),
    /// A layer cannot take its input shape.
    #[error("{kind} {source}")]
    Shape {
        /// The layer kind.
        kind: &'static str,
        /// The numbers.
        source: ShapeError,
    },
    /// A layer's arguments are invalid (zero units, a dropout rate of 1).
    #[error("{kind}: {detail}")]
    Spec {
        /// The layer kind.
        kind: &'static str,
        /// Every problem found, joined.
        detail: String,
    },
    /// A backward pass needs a forward value that the model's workspace did not keep:
    /// the layer's traits in `kiln-shape` do not say that it reads it.
    #[error(
        "the backward pass of {layer} needs the forward's {value}, which the model did not keep; its kind's traits must say that it reads it"
    )]
    NotKept {
        /// The layer kind.
        layer: &'static str,
        /// `input` or `output`.
        value: &'static str,
    },
    /// A layer that normalises with batch statistics got too few values of a channel to
    /// have a variance.
    #[error(
        "{layer} in training needs at least 2 values of each channel, but a batch of {batch} gives {values}: train with a larger batch (inference uses the running statistics and takes any batch)"
    )]
    TooFewValues {
        /// The layer kind.
        layer: &'static str,
        /// The batch given.
        batch: usize,
        /// Values of a channel in that batch.
        values: usize,
    },
    /// A backward pass was asked to add to an input gradient, which its op cannot do.
    #[error("the backward pass of {layer} overwrites its input gradient and cannot add to one")]
    CannotAccumulate {
        /// The layer kind.
        layer: &'static str,
    },
    /// A layer of a model could not be built: its parameters do not fit in memory.
    #[error("{model}: cannot build layer `{layer}`: {source}")]
    Build {
        /// The model.
        model: &'static str,
        /// The layer's path in the model (`block.conv1`).
        layer: &'static str,
        /// What failed.
        source: Box<Error>,
    },
    /// A model was asked to hold batches of zero samples.
    #[error("{model}: max_batch must be at least 1")]
    ZeroMaxBatch {
        /// The model.
        model: &'static str,
    },
    /// A workspace for `max_batch` samples would not fit in the address space.
    #[error("{model}: a workspace for max_batch = {max_batch} samples does not fit in memory")]
    MaxBatchTooLarge {
        /// The model.
        model: &'static str,
        /// The batch asked for.
        max_batch: usize,
    },
    /// A batch is larger than the workspace the model was built for.
    #[error(
        "{model}: batch of {batch} exceeds the max_batch of {max} the model was built with; build it with a larger max_batch"
    )]
    BatchTooLarge {
        /// The model.
        model: &'static str,
        /// The batch given.
        batch: usize,
        /// The model's maximum.
        max: usize,
    },
    /// A batch of zero samples.
    #[error("{model}: empty batch")]
    EmptyBatch {
        /// The model.
        model: &'static str,
    },
    /// Host input whose length is not a whole number of samples.
    #[error("{model}: {len} input values are not a whole number of samples of shape {sample}")]
    InputLength {
        /// The model.
        model: &'static str,
        /// Values given.
        len: usize,
        /// The per-sample input shape.
        sample: Shape,
    },
    /// `backward` before any `forward`.
    #[error("{model}: backward called before forward")]
    BackwardBeforeForward {
        /// The model.
        model: &'static str,
    },
    /// The gradient's batch differs from the last forward's.
    #[error("{model}: gradient for {backward} samples, but the last forward ran on {forward}")]
    BatchMismatch {
        /// The model.
        model: &'static str,
        /// The last forward's batch.
        forward: usize,
        /// The gradient's batch.
        backward: usize,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
