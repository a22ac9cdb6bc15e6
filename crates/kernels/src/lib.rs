//! The backends of kiln: where tensors live and the ops that run on them.
//!
//! [`Backend`] is the contract that layers, losses and optimizers are written
//! against. [`Cpu`] implements it with ndarray storage, a packed SGEMM of kiln's own
//! and a small thread pool; [`Cuda`] implements it on an NVIDIA GPU with hand-written
//! kernels compiled by NVRTC and launched through cudarc (with the `cuda` feature;
//! without it, [`Cuda::new`] is a clear error). Each op lives in its own folder under
//! [`ops`], its CPU math and GPU kernel side by side.
//!
//! ```
//! use kiln_kernels::ops::matmul::{MatmulKernel, MatmulParams};
//! use kiln_kernels::{Cpu, Storage};
//!
//! let cpu = Cpu::with_threads(1)?;
//! let a = cpu.alloc_from(&[1.0, 2.0, 3.0, 4.0])?; // 2 x 2
//! let b = cpu.alloc_from(&[1.0, 0.0, 0.0, 1.0])?; // identity
//! let mut c = cpu.alloc(4)?;
//! let p = MatmulParams { m: 2, n: 2, k: 2, trans_a: false, trans_b: false, accumulate: false };
//! cpu.matmul(&p, &a, &b, &mut c)?;
//! assert_eq!(cpu.to_host(&c, 4)?, [1.0, 2.0, 3.0, 4.0]);
//! # Ok::<(), kiln_kernels::Error>(())
//! ```

pub mod cpu;
pub mod cuda;
mod error;
pub mod group;
pub mod ops;
pub mod param;
pub mod rng;
pub mod storage;
pub mod tensor;

pub use cpu::{Cpu, CpuBuffer};
pub use cuda::Cuda;
#[cfg(feature = "cuda")]
pub use cuda::CudaBuffer;
pub use error::{Error, Result};
pub use group::Group;
pub use ops::Backend;
pub use param::{
    GradAt, ParamMut, ParamRef, StateMut, StateRef, Trainable, ViewParams, ViewState, VisitParams,
    VisitState, zero_gradients,
};
pub use storage::Storage;
pub use tensor::{Tensor, TensorRef};
