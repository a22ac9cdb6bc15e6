//! Running an example's training on the device `--device` names.

use kiln::Backend;
use kiln::prelude::{Cpu, Cuda};

use crate::args::Device;

/// Work written once for every backend.
pub trait OnBackend {
    /// Runs on `backend`.
    fn run<B: Backend>(self, backend: &B) -> Result<(), Box<dyn std::error::Error>>;
}

/// Runs `job` on the CPU, or on the first CUDA GPU (which needs a build with
/// `--features cuda`; without one the error says so).
pub fn run_on(device: Device, job: impl OnBackend) -> Result<(), Box<dyn std::error::Error>> {
    match device {
        Device::Cpu => job.run(&Cpu::new()?),
        Device::Cuda => run_on_cuda(job),
    }
}

#[cfg(feature = "cuda")]
fn run_on_cuda(job: impl OnBackend) -> Result<(), Box<dyn std::error::Error>> {
    job.run(&Cuda::new(0)?)
}

#[cfg(not(feature = "cuda"))]
fn run_on_cuda(_job: impl OnBackend) -> Result<(), Box<dyn std::error::Error>> {
    // Without the feature `Cuda::new` explains how to get a build with it.
    match Cuda::new(0) {
        Err(e) => Err(e.into()),
        Ok(_) => Err("this build has no CUDA backend".into()),
    }
}
