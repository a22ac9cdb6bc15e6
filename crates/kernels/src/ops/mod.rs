//! The ops, one folder each: `mod.rs` holds the op's trait, parameters, docs and
//! tests; `cpu.rs` the reference math on the CPU; with the `cuda` feature, `<op>.cu` the
//! GPU kernels and `cuda.rs` their launch code.
//!
//! Parameter structs are `#[repr(C)]` with `u32` fields, so that they cross into a GPU
//! kernel as they are.
//!
//! The list below is the one place an op is registered: it declares the op's folder,
//! makes its trait part of [`Backend`], and puts its kernel source (`cuda::MODULE`)
//! among those the CUDA backend compiles.

/// Declares every op: its module, its trait in [`Backend`], its CUDA source.
macro_rules! ops {
    ($($op:ident: $kernel:ident,)*) => {
        $(pub mod $op;)*

        /// Everything layers, losses and optimizers need from a backend: storage plus
        /// every op.
        ///
        /// Each op is a trait of its own, in its own folder under
        /// [`ops`](crate::ops) with the CPU math and (with the `cuda` feature) the
        /// CUDA kernel side by side. Ops work on prefixes: a buffer sized once for the
        /// largest batch serves every smaller batch, which is how a model's workspace
        /// is reused without reallocation.
        pub trait Backend: crate::storage::Storage $(+ $op::$kernel)* {}

        impl<T: crate::storage::Storage $(+ $op::$kernel)*> Backend for T {}

        /// The kernel source of every op.
        #[cfg(feature = "cuda")]
        pub(crate) const CUDA_SOURCES: &[crate::cuda::module::KernelSource] =
            &[$($op::cuda::MODULE,)*];
    };
}

ops! {
    activation: ActivationKernel,
    add: AddKernel,
    batch_norm: BatchNormKernel,
    bias: BiasKernel,
    concat: ConcatKernel,
    conv2d: Conv2dKernel,
    dropout: DropoutKernel,
    embedding: EmbeddingKernel,
    ema: EmaKernel,
    loss: LossKernel,
    matmul: MatmulKernel,
    metric: MetricKernel,
    optimizer: OptimizerKernel,
    pool2d: Pool2dKernel,
    recurrent: RecurrentKernel,
    reduce: ReduceKernel,
    layer_norm: LayerNormKernel,
    attention: AttentionKernel,
}

/// Where a backward pass puts the gradient of one of its inputs.
///
/// A value that feeds several consumers (a residual block's input feeds its branch and
/// its shortcut) gets the sum of their gradients: the first consumer to run backward
/// writes the buffer, the others add to it, so that no pass over a scratch copy is
/// needed.
#[derive(Debug)]
pub struct InputGrad<'a, T: ?Sized> {
    /// The gradient's buffer.
    pub buffer: &'a mut T,
    /// Add to what `buffer` holds instead of overwriting it.
    pub accumulate: bool,
}

impl<'a, T: ?Sized> InputGrad<'a, T> {
    /// Overwrites `buffer` with the gradient.
    pub fn write(buffer: &'a mut T) -> Self {
        Self {
            buffer,
            accumulate: false,
        }
    }

    /// Adds the gradient to what `buffer` holds.
    pub fn add_to(buffer: &'a mut T) -> Self {
        Self {
            buffer,
            accumulate: true,
        }
    }

    /// The same destination, reborrowed for a shorter call.
    pub fn reborrow(&mut self) -> InputGrad<'_, T> {
        InputGrad {
            buffer: self.buffer,
            accumulate: self.accumulate,
        }
    }
}

/// `usize` from a `u32` parameter field.
#[inline]
pub(crate) fn us(v: u32) -> usize {
    v as usize
}

/// A `u32` parameter field from a size, or an error naming the op if it overflows.
pub(crate) fn u32_of(op: &'static str, what: &str, v: usize) -> crate::Result<u32> {
    u32::try_from(v).map_err(|_| crate::Error::InvalidParams {
        op,
        detail: format!("{what} = {v} does not fit in 32 bits"),
    })
}
