//! Device buffers.

use cudarc::driver::CudaSlice;

/// A buffer of the CUDA backend: `f32` values in device memory.
#[derive(Debug)]
pub struct CudaBuffer {
    /// At least one value, even for an empty buffer: the driver refuses to allocate
    /// zero bytes.
    pub(crate) data: CudaSlice<f32>,
    /// The values the buffer holds, which may be fewer than `data` holds.
    pub(crate) len: usize,
}

impl CudaBuffer {
    /// The number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device slice, for launching kernels of one's own (it may hold more values
    /// than [`len`](Self::len)).
    pub fn as_slice(&self) -> &CudaSlice<f32> {
        &self.data
    }

    /// The device slice, mutably.
    pub fn as_mut_slice(&mut self) -> &mut CudaSlice<f32> {
        &mut self.data
    }
}
