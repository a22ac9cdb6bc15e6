//! The CUDA backend's entry point.
//!
//! The kernels and their launch code arrive with the CUDA backend proper; until then,
//! and in every build without the `cuda` feature, [`Cuda::new`] returns
//! [`Error::CudaNotCompiled`], so that code asking for a
//! GPU needs no `#[cfg]`.

use crate::{Error, Result};

/// An NVIDIA GPU.
#[derive(Clone, Debug)]
pub struct Cuda {
    ordinal: usize,
}

impl Cuda {
    /// The GPU with index `ordinal`.
    pub fn new(ordinal: usize) -> Result<Self> {
        let _ = ordinal;
        Err(Error::CudaNotCompiled)
    }

    /// The device index.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_feature_a_gpu_is_a_clear_error() {
        let err = Cuda::new(0).unwrap_err();
        assert!(matches!(err, Error::CudaNotCompiled));
        assert!(err.to_string().contains("--features cuda"));
    }
}
