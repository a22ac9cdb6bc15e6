//! The errors of `kiln-losses`.

/// What went wrong when computing a loss.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model's output holds NaN or an infinity.
    #[error(
        "{loss}: the model's output for sample {index} of the batch holds {value} (at value {position} of the sample)"
    )]
    NonFiniteOutput {
        /// The loss's name.
        loss: &'static str,
        /// The sample's index in the batch.
        index: usize,
        /// The value's position in the sample.
        position: usize,
        /// The value.
        value: f32,
    },
    /// A target or weight holds NaN or an infinity.
    #[error("{loss}: the {what} of sample {index} of the batch is {value}")]
    NonFiniteTarget {
        /// The loss's name.
        loss: &'static str,
        /// `target` or `sample weight`.
        what: &'static str,
        /// The sample's index in the batch.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A class label outside `0..classes`.
    #[error(
        "{loss}: the label of sample {index} of the batch is {label}, but the model has {classes} classes (0..{classes})"
    )]
    LabelOutOfRange {
        /// The loss's name.
        loss: &'static str,
        /// The sample's index in the batch.
        index: usize,
        /// The label.
        label: u64,
        /// The number of classes.
        classes: usize,
    },
    /// Targets (or weights) for another number of samples than the output's.
    #[error(
        "{loss}: the output holds {output} samples but the {what} hold {given} values ({expected} expected)"
    )]
    BatchMismatch {
        /// The loss's name.
        loss: &'static str,
        /// `targets` or `sample weights`.
        what: &'static str,
        /// Samples in the output.
        output: usize,
        /// Values given.
        given: usize,
        /// Values expected.
        expected: usize,
    },
    /// A batch larger than the criterion was built for.
    #[error(
        "{loss}: a batch of {batch} samples does not fit the {max_batch} the loss was built for"
    )]
    BatchTooLarge {
        /// The loss's name.
        loss: &'static str,
        /// The batch.
        batch: usize,
        /// The largest batch.
        max_batch: usize,
    },
    /// Options that do not fit the loss or the model.
    #[error("{loss}: {detail}")]
    Config {
        /// The loss's name.
        loss: &'static str,
        /// What is wrong and what to do.
        detail: String,
    },
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] kiln_kernels::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
