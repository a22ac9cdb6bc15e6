//! The errors of `kiln-optim`.

/// What went wrong in an optimizer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Hyper-parameters, or a saved state, that do not fit.
    #[error("{optimizer}: {detail}")]
    Config {
        /// The rule's name (`ema` for the moving average of the weights).
        optimizer: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] kiln_kernels::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
