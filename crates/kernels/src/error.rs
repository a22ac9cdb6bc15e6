//! The errors of `kiln-kernels`.

/// What went wrong in a backend call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operand is shorter than the op needs for the given shapes.
    #[error("{op}: operand `{operand}` holds {len} elements but the shapes need {needed}")]
    BufferTooSmall {
        /// The op (`conv2d_fwd`, `matmul`, ...).
        op: &'static str,
        /// Which operand.
        operand: &'static str,
        /// Elements needed.
        needed: usize,
        /// Elements it holds.
        len: usize,
    },
    /// A host slice and a buffer disagree in length.
    #[error("{op}: host slice of {host} elements does not fit a buffer of {buffer}")]
    HostLength {
        /// `upload` or `download`.
        op: &'static str,
        /// Host elements.
        host: usize,
        /// Buffer elements.
        buffer: usize,
    },
    /// Op parameters that cannot describe a valid computation.
    #[error("{op}: {detail}")]
    InvalidParams {
        /// The op.
        op: &'static str,
        /// What is inconsistent.
        detail: String,
    },
    /// A tensor's data does not match its declared shape and batch.
    #[error("tensor of sample shape {shape} and batch {batch} needs {needed} values, got {got}")]
    TensorLength {
        /// The per-sample shape.
        shape: kiln_shape::Shape,
        /// The batch size.
        batch: usize,
        /// Values needed.
        needed: usize,
        /// Values given.
        got: usize,
    },
    /// An operand holds NaN or an infinity where the op needs finite values.
    #[error("{op}: `{operand}` holds the non-finite value {value} at index {index}")]
    NonFinite {
        /// The op.
        op: &'static str,
        /// Which operand.
        operand: &'static str,
        /// The value's index in the operand.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A class label that is not an integer in `0..classes`.
    #[error("{op}: target {index} is {value}, not a class index in 0..{classes}")]
    InvalidTarget {
        /// The op.
        op: &'static str,
        /// The sample.
        index: usize,
        /// The label as stored.
        value: f32,
        /// The number of classes.
        classes: usize,
    },
    /// A token id that is not an integer below the vocabulary.
    #[error(
        "{op}: the token id at batch row {row}, position {position} is {value}, not an id in 0..{vocabulary}"
    )]
    InvalidToken {
        /// The op.
        op: &'static str,
        /// The sample (batch row).
        row: usize,
        /// The time step within the sample.
        position: usize,
        /// The id as stored.
        value: f32,
        /// The vocabulary.
        vocabulary: usize,
    },
    /// The backend could not allocate a buffer.
    #[error("out of memory: cannot allocate a buffer of {len} f32 values on {backend}")]
    OutOfMemory {
        /// Elements asked for.
        len: usize,
        /// Which backend.
        backend: String,
    },
    /// The CPU thread pool could not start its threads.
    #[error("could not start the CPU worker threads: {0}")]
    ThreadPool(#[from] std::io::Error),
    /// An environment variable kiln reads holds a value it cannot use.
    #[error("the environment variable {var} is {value:?}: expected {expected}")]
    Environment {
        /// The variable.
        var: &'static str,
        /// What it holds.
        value: String,
        /// The values it takes.
        expected: String,
    },
    /// More CPU threads than kiln runs.
    #[error("{threads} CPU threads asked for, more than the {max} kiln runs: ask for fewer")]
    TooManyThreads {
        /// Threads asked for.
        threads: usize,
        /// The most kiln starts.
        max: usize,
    },
    /// kiln was built without the `cuda` feature.
    #[error("kiln was built without CUDA support: rebuild with `--features cuda` to use the GPU")]
    CudaNotCompiled,
    /// The CUDA backend cannot start here: no driver library, no device with that
    /// index, or no NVRTC library to compile the kernels with.
    #[error("CUDA is not available: {reason}")]
    CudaUnavailable {
        /// What is missing, and what to install or check.
        reason: String,
    },
    /// A kernel source did not compile with NVRTC (a bug in kiln, or an NVRTC too old
    /// for the GPU).
    #[error("NVRTC could not compile the `{module}` kernels: {log}")]
    KernelCompile {
        /// The kernel module (the op's name).
        module: &'static str,
        /// NVRTC's message and log.
        log: String,
    },
    /// A CUDA driver call failed.
    #[error("{op}: the CUDA driver reported {detail}")]
    CudaDriver {
        /// The op or storage call.
        op: &'static str,
        /// The driver's error.
        detail: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that `operand` holds at least `needed` elements.
pub(crate) fn check_len(
    op: &'static str,
    operand: &'static str,
    needed: usize,
    len: usize,
) -> Result<()> {
    if len < needed {
        return Err(Error::BufferTooSmall {
            op,
            operand,
            needed,
            len,
        });
    }
    Ok(())
}
