//! Device buffers.

use cudarc::driver::CudaSlice;

/// A buffer of the CUDA backend: `f32` values in device memory.
#[derive(Debug)]
pub struct CudaBuffer {
    pub(crate) data: CudaSlice<f32>,
}

impl CudaBuffer {
    /// The number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the buffer holds no value.
    pub fn is_empty(&self) -> bool {
        self.data.len() == 0
    }

    /// The device slice, for launching kernels of one's own.
    pub fn as_slice(&self) -> &CudaSlice<f32> {
        &self.data
    }

    /// The device slice, mutably.
    pub fn as_mut_slice(&mut self) -> &mut CudaSlice<f32> {
        &mut self.data
    }
}
