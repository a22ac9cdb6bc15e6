//! The CPU backend: ndarray storage, kiln's own packed SGEMM, and a small thread pool.

pub mod env;
pub mod gemm;
mod pool;
mod profile;

use std::sync::Arc;

use ndarray::Array1;

use crate::error::check_len;
use crate::storage::Storage;
use crate::{Error, Result};

pub use pool::ThreadPool;

/// A buffer of the CPU backend: an ndarray vector in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuBuffer {
    data: Array1<f32>,
}

impl CpuBuffer {
    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        // An `Array1` built by `zeros` or `from_vec` is contiguous in standard order.
        self.data.as_slice().unwrap_or(&[])
    }

    /// The values, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        self.data.as_slice_mut().unwrap_or(&mut [])
    }

    /// The underlying ndarray vector.
    pub fn as_array(&self) -> &Array1<f32> {
        &self.data
    }
}

pub(crate) struct CpuInner {
    pub(crate) pool: ThreadPool,
    pub(crate) gemm: gemm::GemmScratch,
    /// Per-thread partial results of reductions (column sums), combined in a fixed
    /// order so that results do not depend on scheduling. Grows to the widest
    /// reduction once, during the first step.
    pub(crate) partials: std::sync::Mutex<Vec<f32>>,
}

/// The CPU backend. Cloning it is cheap and shares its threads.
///
/// ```
/// use kiln_kernels::{Cpu, Storage};
///
/// let cpu = Cpu::with_threads(2).unwrap();
/// let buffer = cpu.alloc_from(&[1.0, 2.0, 3.0]).unwrap();
/// assert_eq!(cpu.to_host(&buffer, 3).unwrap(), [1.0, 2.0, 3.0]);
/// ```
#[derive(Clone)]
pub struct Cpu {
    inner: Arc<CpuInner>,
}

impl std::fmt::Debug for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cpu")
            .field("threads", &self.threads())
            .finish()
    }
}

impl Cpu {
    /// A CPU backend with one thread per available core, or `KILN_THREADS` threads
    /// where that is set (a value that is not a whole number from 1 up is an error; one
    /// above [`env::max_threads`] is capped with a warning). `KILN_CPU_ISA`, where set,
    /// must name a code path (`avx512`, `avx2` or `portable`). In a build whose kernels
    /// are unoptimised (a program's debug build without `opt-level` for its
    /// dependencies) it says so once, on standard error, with the fix.
    pub fn new() -> Result<Self> {
        profile::warn_if_unoptimised();
        env::check_isa()?;
        let threads = env::threads_from_env()?.unwrap_or_else(env::available);
        Self::with_threads(threads)
    }

    /// A CPU backend running its ops on `threads` threads (the caller included); more
    /// than [`env::max_threads`] is an error.
    pub fn with_threads(threads: usize) -> Result<Self> {
        let max = env::max_threads();
        if threads > max {
            return Err(Error::TooManyThreads { threads, max });
        }
        let pool = ThreadPool::new(threads)?;
        let gemm = gemm::GemmScratch::new(pool.threads());
        Ok(Self {
            inner: Arc::new(CpuInner {
                pool,
                gemm,
                partials: std::sync::Mutex::new(Vec::new()),
            }),
        })
    }

    /// A backend that runs the portable code paths (those of CPUs without AVX2) on
    /// `threads` threads, for tests on machines that have AVX2.
    #[cfg(test)]
    pub(crate) fn portable(threads: usize) -> Result<Self> {
        Self::with_isa(threads, gemm::Isa::Portable)
    }

    /// A backend that runs the code paths of `isa` (which the CPU must support) on
    /// `threads` threads, for tests of the narrower paths on wider CPUs.
    #[cfg(test)]
    pub(crate) fn with_isa(threads: usize, isa: gemm::Isa) -> Result<Self> {
        let cpu = Self::with_threads(threads)?;
        let inner = Arc::into_inner(cpu.inner).expect("a new backend is not shared");
        Ok(Self {
            inner: Arc::new(CpuInner {
                gemm: inner.gemm.with_isa(isa),
                ..inner
            }),
        })
    }

    /// Backends on 1 and 2 threads with the detected code paths, then on 2 threads
    /// with each narrower one this CPU supports (AVX2 where it has AVX-512; the
    /// portable code always): every path the CPUs kiln runs on may take.
    #[cfg(test)]
    pub(crate) fn every_path() -> Vec<Self> {
        let detected = gemm::Isa::detect();
        let mut backends = vec![
            Self::with_threads(1).expect("a backend"),
            Self::with_threads(2).expect("a backend"),
        ];
        #[cfg(target_arch = "x86_64")]
        if detected == gemm::Isa::Avx512 {
            backends.push(Self::with_isa(2, gemm::Isa::Avx2Fma).expect("a backend"));
        }
        if detected != gemm::Isa::Portable {
            backends.push(Self::portable(2).expect("a backend"));
        }
        backends
    }

    /// The number of threads ops run on.
    pub fn threads(&self) -> usize {
        self.inner.pool.threads()
    }

    pub(crate) fn inner(&self) -> &CpuInner {
        &self.inner
    }

    /// Runs `f(index, chunk)` over `data` cut into chunks of `chunk` elements (the last
    /// may be shorter), in parallel.
    pub(crate) fn par_chunks_mut(
        &self,
        data: &mut [f32],
        chunk: usize,
        f: impl Fn(usize, &mut [f32]) + Sync,
    ) {
        let chunk = chunk.max(1);
        let len = data.len();
        let tasks = len.div_ceil(chunk);
        let base = SendPtr(data.as_mut_ptr());
        self.inner.pool.run(tasks, &|t, _| {
            let start = t * chunk;
            let end = (start + chunk).min(len);
            // SAFETY: tasks cover disjoint ranges `start..end` inside `data`, which is
            // exclusively borrowed for the duration of `run`.
            let part =
                unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
            f(t, part);
        });
    }

    /// A chunk size that gives each thread a few pieces of `len` elements, but none
    /// smaller than `min`.
    pub(crate) fn chunk_for(&self, len: usize, min: usize) -> usize {
        len.div_ceil(self.threads() * 4).max(min)
    }
}

/// A raw pointer that may cross threads; every use says why the access is disjoint.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);

impl<T> SendPtr<T> {
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: `SendPtr` is only handed to pool tasks that write disjoint ranges.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

impl Storage for Cpu {
    type Buffer = CpuBuffer;

    fn name(&self) -> String {
        format!("cpu ({} threads)", self.threads())
    }

    fn alloc(&self, len: usize) -> Result<CpuBuffer> {
        // `try_reserve` turns an impossible size into an error instead of an abort.
        let mut data = Vec::new();
        data.try_reserve_exact(len)
            .map_err(|_| Error::OutOfMemory {
                len,
                backend: self.name(),
            })?;
        data.resize(len, 0.0);
        Ok(CpuBuffer {
            data: Array1::from_vec(data),
        })
    }

    fn len(&self, buffer: &CpuBuffer) -> usize {
        buffer.data.len()
    }

    fn upload(&self, src: &[f32], dst: &mut CpuBuffer) -> Result<()> {
        let dst = dst.as_mut_slice();
        if src.len() > dst.len() {
            return Err(Error::HostLength {
                op: "upload",
                host: src.len(),
                buffer: dst.len(),
            });
        }
        dst[..src.len()].copy_from_slice(src);
        Ok(())
    }

    fn download(&self, src: &CpuBuffer, dst: &mut [f32]) -> Result<()> {
        let src = src.as_slice();
        if dst.len() > src.len() {
            return Err(Error::HostLength {
                op: "download",
                host: dst.len(),
                buffer: src.len(),
            });
        }
        dst.copy_from_slice(&src[..dst.len()]);
        Ok(())
    }

    fn fill(&self, buffer: &mut CpuBuffer, len: usize, value: f32) -> Result<()> {
        check_len("fill", "buffer", len, buffer.data.len())?;
        buffer.as_mut_slice()[..len].fill(value);
        Ok(())
    }

    fn check_errors(&self) -> Result<()> {
        // Every CPU op has returned its error already.
        Ok(())
    }

    fn copy(&self, src: &CpuBuffer, dst: &mut CpuBuffer, len: usize) -> Result<()> {
        check_len("copy", "src", len, src.data.len())?;
        check_len("copy", "dst", len, dst.data.len())?;
        let src = &src.as_slice()[..len];
        // Large copies are split over the threads: one core alone does not saturate
        // the memory system.
        let chunk = self.chunk_for(len, 1 << 16);
        self.par_chunks_mut(&mut dst.as_mut_slice()[..len], chunk, |t, part| {
            let start = t * chunk;
            part.copy_from_slice(&src[start..start + part.len()]);
        });
        Ok(())
    }
}
