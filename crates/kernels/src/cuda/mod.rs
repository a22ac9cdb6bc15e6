//! The CUDA backend: [`Cuda`], one GPU.
//!
//! With the `cuda` feature, [`Cuda::new`] loads the driver library at run time (a
//! machine without it gets [`CudaUnavailable`](crate::Error::CudaUnavailable), never a
//! panic), opens the device and its default stream, and compiles each op's kernels
//! with NVRTC the first time the op runs (see `cuda::module`). Buffers are device
//! memory (`CudaBuffer`). Each op's launch code sits in its folder
//! (`ops/<op>/cuda.rs`) beside its kernel (`ops/<op>/<op>.cu`). Launches never wait for
//! the GPU: errors that kernels find stay on the device until
//! [`Storage::check_errors`](crate::Storage::check_errors) (see `cuda::report`). The
//! matrix product and the convolutions share one SGEMM core, kept here beside the
//! backend as the CPU's is in `cpu::gemm`: its device code (`gemm.cuh`) and its tiles,
//! plans and launch grids (`cuda::gemm`).
//!
//! The kernels are tested three ways: NVRTC compiles every source (`tests/nvrtc.rs`,
//! no GPU needed), a host emulation of CUDA runs them against direct loops
//! (`tests/emulated.rs`, no GPU needed), and each op's parity test compares them with
//! the CPU backend where a GPU is present.
//!
//! Without the feature the type still exists and [`Cuda::new`] returns
//! [`CudaNotCompiled`](crate::Error::CudaNotCompiled), so that code asking for a GPU
//! needs no `#[cfg]`.

#[cfg(feature = "cuda")]
mod buffer;
#[cfg(feature = "cuda")]
mod device;
#[cfg(feature = "cuda")]
pub(crate) mod gemm;
#[cfg(feature = "cuda")]
pub(crate) mod launch;
#[cfg(feature = "cuda")]
pub mod module;
#[cfg(feature = "cuda")]
pub(crate) mod report;

#[cfg(feature = "cuda")]
pub use buffer::CudaBuffer;

#[cfg(not(feature = "cuda"))]
use crate::{Error, Result};

/// An NVIDIA GPU. Cloning it is cheap and shares its context, stream and kernels.
#[cfg(feature = "cuda")]
#[derive(Clone)]
pub struct Cuda {
    ordinal: usize,
    inner: std::sync::Arc<device::CudaInner>,
}

/// An NVIDIA GPU (this build has no CUDA support: [`Cuda::new`] always fails).
#[cfg(not(feature = "cuda"))]
#[derive(Clone, Debug)]
pub struct Cuda {
    ordinal: usize,
}

#[cfg(not(feature = "cuda"))]
impl Cuda {
    /// The GPU with index `ordinal`.
    pub fn new(ordinal: usize) -> Result<Self> {
        let _ = ordinal;
        Err(Error::CudaNotCompiled)
    }
}

impl Cuda {
    /// The device index.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }
}

#[cfg(all(test, feature = "cuda"))]
mod tests {
    use super::*;

    #[test]
    fn the_gpu_is_a_whole_backend() {
        fn backend<B: crate::Backend>() {}
        backend::<Cuda>();
    }

    #[test]
    fn a_missing_device_is_an_error_not_a_panic() {
        // Without a driver the first check fails; with one, no GPU has this index.
        let err = Cuda::new(1_000).unwrap_err();
        assert!(matches!(err, crate::Error::CudaUnavailable { .. }), "{err}");
    }
}

#[cfg(all(test, not(feature = "cuda")))]
mod tests {
    use super::*;

    #[test]
    fn without_the_feature_a_gpu_is_a_clear_error() {
        let err = Cuda::new(0).unwrap_err();
        assert!(matches!(err, Error::CudaNotCompiled));
        assert!(err.to_string().contains("--features cuda"));
    }
}

/// A GPU for the parity tests, or `None` (with a line on stderr saying the test
/// skipped) where this machine has none.
#[cfg(all(test, feature = "cuda"))]
pub(crate) fn test_device() -> Option<Cuda> {
    use std::io::Write;
    match Cuda::new(0) {
        Ok(cuda) => Some(cuda),
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "skipped: no CUDA device ({err})");
            None
        }
    }
}

/// Inputs and comparisons for the tests that hold the GPU's results against the CPU's.
#[cfg(all(test, feature = "cuda"))]
pub(crate) mod parity {
    /// `n` values in `[-scale, scale)`, the same for the same seed.
    pub(crate) fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut rng = crate::rng::Rng::new(seed);
        (0..n).map(|_| rng.uniform_in(-scale, scale)).collect()
    }

    /// Asserts `|gpu - cpu| <= atol + rtol * |cpu|` everywhere (NaN only against NaN).
    pub(crate) fn assert_close(what: &str, cpu: &[f32], gpu: &[f32], rtol: f32, atol: f32) {
        assert_eq!(cpu.len(), gpu.len(), "{what}: lengths");
        for (i, (&c, &g)) in cpu.iter().zip(gpu).enumerate() {
            if c.is_nan() || g.is_nan() {
                assert!(c.is_nan() && g.is_nan(), "{what}[{i}]: cpu {c}, gpu {g}");
                continue;
            }
            assert!(
                (c - g).abs() <= atol + rtol * c.abs(),
                "{what}[{i}]: cpu {c}, gpu {g}"
            );
        }
    }
}
