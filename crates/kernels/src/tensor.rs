//! [`Tensor`]: a batch of samples whose per-sample shape is part of its type.

use std::marker::PhantomData;

use kiln_shape::{Shape, StaticShape, Tokens};

use crate::{Backend, Error, Result};

/// A batch of `batch` samples of shape `S`, stored in a buffer of backend `B`.
///
/// The sample shape is a type (`Rank3<32, 32, 3>`), so a model's `forward` accepts only
/// batches of its input shape; the batch size is a run-time value.
pub struct Tensor<S: StaticShape, B: Backend> {
    buffer: B::Buffer,
    batch: usize,
    _shape: PhantomData<S>,
}

impl<S: StaticShape, B: Backend> std::fmt::Debug for Tensor<S, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor")
            .field("shape", &S::SHAPE)
            .field("batch", &self.batch)
            .finish()
    }
}

impl<S: StaticShape, B: Backend> Tensor<S, B> {
    /// A batch made from host data in sample-major, row-major order (`[n, h, w, c]`).
    ///
    /// Fails unless `data.len()` is `batch` times the sample size.
    pub fn from_slice(backend: &B, batch: usize, data: &[f32]) -> Result<Self> {
        let needed = batch * S::SIZE;
        if data.len() != needed {
            return Err(Error::TensorLength {
                shape: S::SHAPE,
                batch,
                needed,
                got: data.len(),
            });
        }
        Ok(Self {
            buffer: backend.alloc_from(data)?,
            batch,
            _shape: PhantomData,
        })
    }

    /// A zero-filled batch with room for `batch` samples.
    pub fn zeros(backend: &B, batch: usize) -> Result<Self> {
        Ok(Self {
            buffer: backend.alloc(batch * S::SIZE)?,
            batch,
            _shape: PhantomData,
        })
    }

    /// Overwrites the batch with host data, keeping the buffer; `data.len() / S::SIZE`
    /// becomes the batch size, which must fit the buffer.
    pub fn upload(&mut self, backend: &B, data: &[f32]) -> Result<()> {
        let batch = data.len() / S::SIZE;
        let capacity = backend.len(&self.buffer) / S::SIZE.max(1);
        if !data.len().is_multiple_of(S::SIZE.max(1)) || batch > capacity {
            return Err(Error::TensorLength {
                shape: S::SHAPE,
                batch: capacity,
                needed: capacity * S::SIZE,
                got: data.len(),
            });
        }
        backend.upload(data, &mut self.buffer)?;
        self.batch = batch;
        Ok(())
    }

    /// Marks the first `batch` samples as the tensor's contents (an op wrote them),
    /// keeping the buffer; `batch` must fit it.
    pub fn set_batch(&mut self, backend: &B, batch: usize) -> Result<()> {
        let capacity = backend.len(&self.buffer) / S::SIZE.max(1);
        if batch > capacity {
            return Err(Error::TensorLength {
                shape: S::SHAPE,
                batch,
                needed: batch * S::SIZE,
                got: backend.len(&self.buffer),
            });
        }
        self.batch = batch;
        Ok(())
    }

    /// The per-sample shape.
    pub fn sample_shape(&self) -> Shape {
        S::SHAPE
    }

    /// The number of samples.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The number of values: `batch * sample size`.
    pub fn len(&self) -> usize {
        self.batch * S::SIZE
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.batch == 0
    }

    /// The backend buffer (which may be longer than [`Tensor::len`]).
    pub fn buffer(&self) -> &B::Buffer {
        &self.buffer
    }

    /// The backend buffer, mutably.
    pub fn buffer_mut(&mut self) -> &mut B::Buffer {
        &mut self.buffer
    }

    /// A borrowed view of the batch, as a model's output is.
    pub fn view(&self) -> TensorRef<'_, S, B> {
        TensorRef::new(&self.buffer, self.batch)
    }

    /// The values on the host. Allocates.
    pub fn to_vec(&self, backend: &B) -> Result<Vec<f32>> {
        backend.to_host(&self.buffer, self.len())
    }
}

impl<const T: usize, const V: usize, B: Backend> Tensor<Tokens<T, V>, B> {
    /// A batch of `batch` sequences of `T` token ids, sequence after sequence.
    ///
    /// Fails unless there are `batch * T` ids, each below the vocabulary `V` (the
    /// error names the batch row and position of the first that is not).
    pub fn from_ids(backend: &B, batch: usize, ids: &[u32]) -> Result<Self> {
        if ids.len() != batch * T {
            return Err(Error::TensorLength {
                shape: Tokens::<T, V>::SHAPE,
                batch,
                needed: batch * T,
                got: ids.len(),
            });
        }
        if let Some(i) = ids.iter().position(|&id| id as usize >= V) {
            return Err(Error::InvalidToken {
                op: "Tensor::from_ids",
                row: i / T.max(1),
                position: i % T.max(1),
                value: ids[i] as f32,
                vocabulary: V,
            });
        }
        let values: Vec<f32> = ids.iter().map(|&id| id as f32).collect();
        Self::from_slice(backend, batch, &values)
    }
}

/// A borrowed view of a batch that lives in a model's workspace (its output, say).
pub struct TensorRef<'a, S: StaticShape, B: Backend> {
    buffer: &'a B::Buffer,
    batch: usize,
    _shape: PhantomData<S>,
}

impl<'a, S: StaticShape, B: Backend> TensorRef<'a, S, B> {
    /// A view of the first `batch` samples of `buffer`.
    pub fn new(buffer: &'a B::Buffer, batch: usize) -> Self {
        Self {
            buffer,
            batch,
            _shape: PhantomData,
        }
    }

    /// The number of samples.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.batch * S::SIZE
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.batch == 0
    }

    /// The backend buffer (possibly longer than [`TensorRef::len`]).
    pub fn buffer(&self) -> &'a B::Buffer {
        self.buffer
    }

    /// Copies the values to `dst`, which must hold [`TensorRef::len`] values.
    pub fn download(&self, backend: &B, dst: &mut [f32]) -> Result<()> {
        if dst.len() != self.len() {
            return Err(Error::HostLength {
                op: "download",
                host: dst.len(),
                buffer: self.len(),
            });
        }
        backend.download(self.buffer, dst)
    }

    /// The values on the host. Allocates.
    pub fn to_vec(&self, backend: &B) -> Result<Vec<f32>> {
        backend.to_host(self.buffer, self.len())
    }
}
