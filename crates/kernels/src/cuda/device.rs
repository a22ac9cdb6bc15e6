//! Opening a device, and the [`Storage`] half of the backend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtrMut, DeviceRepr,
    DriverError, PushKernelArg, sys,
};

use super::launch::{driver_err, in_groups};
use super::report::{Reports, STATUS_WORDS};
use super::{Cuda, CudaBuffer, module};
use crate::error::check_len;
use crate::storage::Storage;
use crate::{Error, Result};

/// What a [`Cuda`] shares among its clones.
pub(crate) struct CudaInner {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    /// `sm_XY` of the device: what NVRTC compiles for.
    pub(crate) arch: String,
    name: String,
    /// Streaming multiprocessors: what a launch's blocks are spread over.
    multiprocessors: usize,
    /// Buffers allocated through [`Storage::alloc`] so far.
    allocations: std::sync::atomic::AtomicUsize,
    /// Kernels launched so far (each launch looks its kernel up first).
    pub(crate) launches: std::sync::atomic::AtomicUsize,
    /// Modules compiled and loaded so far, by module name; each compiles once per
    /// context, the first time one of its kernels runs.
    pub(crate) modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    /// Functions looked up so far, by kernel name.
    pub(crate) functions: Mutex<HashMap<&'static str, CudaFunction>>,
    /// Per-block partial sums of the reductions, allocated at the first one.
    pub(crate) partials: Mutex<Option<CudaSlice<f64>>>,
    /// The words kernels report errors through, and who launched them (see
    /// `cuda::report`).
    pub(crate) reports: Mutex<Reports>,
}

fn unavailable(reason: impl Into<String>) -> Error {
    Error::CudaUnavailable {
        reason: reason.into(),
    }
}

impl Cuda {
    /// The GPU with index `ordinal`.
    ///
    /// Fails with [`Error::CudaUnavailable`] when the driver library, the device or the
    /// NVRTC library (which compiles the kernels) is missing.
    pub fn new(ordinal: usize) -> Result<Self> {
        // SAFETY: only tries to open the library with `dlopen`; no symbol is called.
        // cudarc panics on the first driver call when the library is missing, so this
        // check comes before any.
        if !unsafe { sys::is_culib_present() } {
            return Err(unavailable(
                "the CUDA driver library (libcuda.so) was not found: install the NVIDIA driver",
            ));
        }
        if !module::nvrtc_available() {
            return Err(unavailable(
                "the NVRTC library (libnvrtc.so) was not found: install the CUDA toolkit or \
                 the `nvidia-cuda-nvrtc` wheel and add its folder to LD_LIBRARY_PATH",
            ));
        }
        let count = CudaContext::device_count()
            .map_err(|e| unavailable(format!("the driver did not start: {e:?}")))?;
        if ordinal >= usize::try_from(count).unwrap_or(0) {
            return Err(unavailable(format!(
                "there is no CUDA device {ordinal} ({count} found)"
            )));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| unavailable(format!("device {ordinal} did not open: {e:?}")))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| driver_err("Cuda::new", e))?;
        let name = ctx.name().map_err(|e| driver_err("Cuda::new", e))?;
        let multiprocessors = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(|e| driver_err("Cuda::new", e))?;
        // SAFETY: every buffer and launch of the backend goes through the device's
        // one stream, so there is no use on another stream to synchronise with; the
        // per-buffer events would only cost two event records a launch.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let words = stream
            .alloc_zeros::<u64>(STATUS_WORDS)
            .map_err(|e| driver_err("Cuda::new", e))?;
        Ok(Self {
            ordinal,
            inner: Arc::new(CudaInner {
                ctx,
                stream,
                arch: format!("sm_{major}{minor}"),
                name,
                multiprocessors: usize::try_from(multiprocessors).unwrap_or(1).max(1),
                allocations: std::sync::atomic::AtomicUsize::new(0),
                launches: std::sync::atomic::AtomicUsize::new(0),
                modules: Mutex::new(HashMap::new()),
                functions: Mutex::new(HashMap::new()),
                partials: Mutex::new(None),
                reports: Mutex::new(Reports::new(words)),
            }),
        })
    }

    /// The device's name, as the driver reports it.
    pub fn device_name(&self) -> &str {
        &self.inner.name
    }

    /// Waits until every launched kernel has finished.
    pub fn synchronize(&self) -> Result<()> {
        self.inner
            .stream
            .synchronize()
            .map_err(|e| driver_err("synchronize", e))
    }

    /// How many buffers [`Storage::alloc`] has allocated on this device (by this
    /// handle and its clones): what shows that a training step in its steady state
    /// allocates no device memory.
    pub fn allocations(&self) -> usize {
        self.inner
            .allocations
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many kernels have been launched on this device (by this handle and its
    /// clones): what a step costs in launches, which bound small batches.
    pub fn launches(&self) -> usize {
        self.inner
            .launches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The device's streaming multiprocessors.
    pub fn multiprocessors(&self) -> usize {
        self.inner.multiprocessors
    }

    pub(crate) fn inner(&self) -> &CudaInner {
        &self.inner
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.inner.stream
    }
}

impl std::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cuda")
            .field("ordinal", &self.ordinal)
            .field("device", &self.inner.name)
            .field("arch", &self.inner.arch)
            .finish()
    }
}

fn alloc_err(len: usize, backend: String, e: DriverError) -> Error {
    if e.0 == sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY {
        Error::OutOfMemory { len, backend }
    } else {
        driver_err("alloc", e)
    }
}

/// The fill of up to [`FILL_GROUP`] buffers in one launch (one buffer is a group of
/// one).
const FILL_GROUP_FWD: &str = "fill_group_fwd_f32";

/// Buffers one group fill sets (`FILL_GROUP` in storage.cu).
const FILL_GROUP: usize = 16;

/// `struct FillGroup` in storage.cu.
#[repr(C)]
#[derive(Clone, Copy)]
struct FillGroup {
    count: u32,
    value: f32,
    len: [u64; FILL_GROUP],
    y: [u64; FILL_GROUP],
}

// SAFETY: `#[repr(C)]` of a `u32`, an `f32` and two arrays of sixteen `u64` (lengths
// and device addresses), laid out as `struct FillGroup` in storage.cu.
unsafe impl DeviceRepr for FillGroup {}

/// The storage kernels.
pub(crate) const STORAGE_MODULE: module::KernelSource = module::KernelSource {
    name: "storage",
    code: concat!(include_str!("prelude.cuh"), include_str!("storage.cu")),
    kernels: &[FILL_GROUP_FWD],
    fmad: false,
};

impl Storage for Cuda {
    type Buffer = CudaBuffer;

    fn name(&self) -> String {
        format!("cuda:{} ({})", self.ordinal, self.inner.name)
    }

    fn alloc(&self, len: usize) -> Result<CudaBuffer> {
        self.inner
            .allocations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let data = self
            .stream()
            .alloc_zeros::<f32>(len.max(1))
            .map_err(|e| alloc_err(len, self.name(), e))?;
        Ok(CudaBuffer { data, len })
    }

    fn len(&self, buffer: &CudaBuffer) -> usize {
        buffer.len
    }

    fn upload(&self, src: &[f32], dst: &mut CudaBuffer) -> Result<()> {
        if src.len() > dst.len() {
            return Err(Error::HostLength {
                op: "upload",
                host: src.len(),
                buffer: dst.len(),
            });
        }
        if src.is_empty() {
            return Ok(());
        }
        self.stream()
            .memcpy_htod(src, &mut dst.data.slice_mut(..src.len()))
            .map_err(|e| driver_err("upload", e))
    }

    fn download(&self, src: &CudaBuffer, dst: &mut [f32]) -> Result<()> {
        if dst.len() > src.len() {
            return Err(Error::HostLength {
                op: "download",
                host: dst.len(),
                buffer: src.len(),
            });
        }
        if dst.is_empty() {
            return Ok(());
        }
        self.stream()
            .memcpy_dtoh(&src.data.slice(..dst.len()), dst)
            .map_err(|e| driver_err("download", e))?;
        self.synchronize()
    }

    fn fill(&self, buffer: &mut CudaBuffer, len: usize, value: f32) -> Result<()> {
        self.fill_many([(buffer, len)], value)
    }

    fn check_errors(&self) -> Result<()> {
        self.take_reports()
    }

    fn fill_many<'a>(
        &self,
        buffers: impl IntoIterator<Item = (&'a mut CudaBuffer, usize)>,
        value: f32,
    ) -> Result<()>
    where
        Self: 'a,
    {
        let stream = self.stream();
        let fresh = || FillGroup {
            count: 0,
            value,
            len: [0; FILL_GROUP],
            y: [0; FILL_GROUP],
        };
        let add = |group: &mut FillGroup, i: usize, (buffer, len): (&'a mut CudaBuffer, usize)| {
            check_len("fill", "buffer", len, buffer.len())?;
            if len > 0 {
                group.len[i] = len as u64;
                group.y[i] = buffer.data.device_ptr_mut(stream).0;
            }
            Ok(len)
        };
        in_groups(buffers, FILL_GROUP, fresh, add, |group, count, cfg| {
            let group = FillGroup { count, ..*group };
            let f = self.function(&STORAGE_MODULE, FILL_GROUP_FWD)?;
            let mut args = stream.launch_builder(&f);
            args.arg(&group);
            // SAFETY: block row `t < count` writes `len[t]` values (each checked against
            // its buffer above) at the address of a buffer borrowed for this call.
            unsafe { args.launch(cfg) }.map_err(|e| driver_err("fill", e))?;
            Ok(())
        })
    }

    fn copy(&self, src: &CudaBuffer, dst: &mut CudaBuffer, len: usize) -> Result<()> {
        check_len("copy", "src", len, src.len())?;
        check_len("copy", "dst", len, dst.len())?;
        if len == 0 {
            return Ok(());
        }
        self.stream()
            .memcpy_dtod(&src.data.slice(..len), &mut dst.data.slice_mut(..len))
            .map_err(|e| driver_err("copy", e))
    }
}
