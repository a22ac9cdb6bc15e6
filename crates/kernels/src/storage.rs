//! [`Storage`]: a backend's buffers and the moves between them and the host.
//!
//! A buffer is a backend handle ([`Storage::Buffer`]): host memory for
//! [`Cpu`](crate::Cpu), device memory for the CUDA backend. Nothing in the trait names
//! ndarray or a pointer, so a backend is free to keep its data wherever it runs
//! fastest. Every op trait under [`ops`](crate::ops) builds on this one, and
//! [`Backend`](crate::Backend) sums them.

use std::fmt::Debug;

use crate::Result;

/// Buffers of `f32` and the moves between host and backend.
pub trait Storage: Clone + Debug + Send + Sync + 'static {
    /// A buffer of `f32` owned by this backend.
    type Buffer: Debug + Send + Sync + 'static;

    /// A short name for messages: `cpu`, `cuda:0`.
    fn name(&self) -> String;

    /// A zero-filled buffer of `len` elements.
    fn alloc(&self, len: usize) -> Result<Self::Buffer>;

    /// The number of elements `buffer` holds.
    fn len(&self, buffer: &Self::Buffer) -> usize;

    /// Copies `src` into the first `src.len()` elements of `dst`.
    fn upload(&self, src: &[f32], dst: &mut Self::Buffer) -> Result<()>;

    /// Copies the first `dst.len()` elements of `src` into `dst`.
    fn download(&self, src: &Self::Buffer, dst: &mut [f32]) -> Result<()>;

    /// Sets the first `len` elements of `buffer` to `value`.
    fn fill(&self, buffer: &mut Self::Buffer, len: usize, value: f32) -> Result<()>;

    /// Copies the first `len` elements of `src` into `dst`.
    fn copy(&self, src: &Self::Buffer, dst: &mut Self::Buffer, len: usize) -> Result<()>;

    /// Sets the first `len` elements of each buffer to `value`: what a GPU does in one
    /// launch for up to sixteen buffers (a model's gradients before a step), the CPU
    /// one buffer after another.
    fn fill_many<'a>(
        &self,
        buffers: impl IntoIterator<Item = (&'a mut Self::Buffer, usize)>,
        value: f32,
    ) -> Result<()>
    where
        Self: 'a,
    {
        for (buffer, len) in buffers {
            self.fill(buffer, len, value)?;
        }
        Ok(())
    }

    /// Waits for the ops launched so far and returns the first error they found since
    /// the last call.
    ///
    /// Where ops run asynchronously (CUDA), a kernel that finds a non-finite loss
    /// input, an invalid label or a non-finite value given to
    /// [`check_finite`](crate::ops::reduce::ReduceKernel::check_finite) cannot fail its
    /// launch: the finding waits on the device, every optimizer update skips
    /// meanwhile (so the step that found it changes no weight), and this call returns
    /// it as the error the launch returns on the CPU. The CPU returns every error from
    /// the call that finds it, so there this returns `Ok`.
    fn check_errors(&self) -> Result<()>;

    /// A new buffer holding `src`.
    fn alloc_from(&self, src: &[f32]) -> Result<Self::Buffer> {
        let mut buffer = self.alloc(src.len())?;
        self.upload(src, &mut buffer)?;
        Ok(buffer)
    }

    /// The first `len` elements of `buffer`, on the host. Allocates: for tests and
    /// reporting, not for a training step.
    fn to_host(&self, buffer: &Self::Buffer, len: usize) -> Result<Vec<f32>> {
        let mut out = vec![0.0; len];
        self.download(buffer, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::Storage;
    use crate::Cpu;

    /// Filling many buffers at once sets the first `len` values of each and nothing
    /// else: twenty buffers (past a GPU's group of sixteen), one of them left alone.
    fn check_fill_many<B: Storage>(backend: &B) {
        let sizes: Vec<usize> = (0..20).map(|i| 1 + i * 37 % 101).collect();
        let mut buffers: Vec<B::Buffer> = sizes
            .iter()
            .map(|&n| backend.alloc_from(&vec![-1.0; n]).unwrap())
            .collect();
        let lens: Vec<usize> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| if i == 3 { 0 } else { n - i % 2 })
            .collect();
        backend
            .fill_many(buffers.iter_mut().zip(lens.iter().copied()), 2.5)
            .unwrap();
        for (i, buffer) in buffers.iter().enumerate() {
            let host = backend.to_host(buffer, sizes[i]).unwrap();
            let (set, kept) = host.split_at(lens[i]);
            assert!(set.iter().all(|&v| v == 2.5), "buffer {i}");
            assert!(kept.iter().all(|&v| v == -1.0), "buffer {i}");
        }
        let mut short = backend.alloc(2).unwrap();
        assert!(backend.fill_many([(&mut short, 3)], 0.0).is_err());
    }

    #[test]
    fn fills_many_buffers_on_cpu() {
        check_fill_many(&Cpu::with_threads(2).unwrap());
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn fills_many_buffers_on_cuda() {
        if let Some(gpu) = crate::cuda::test_device() {
            check_fill_many(&gpu);
        }
    }
}
