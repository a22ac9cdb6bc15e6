//! The kernel sources and their compilation with NVRTC.
//!
//! Each op's `.cu` file is embedded in the library (`include_str!`) behind a shared
//! prelude (`prelude.cuh`: grid-stride loops, the activation functions). A module is
//! compiled for the device's own architecture (`sm_XY`) the first time one of its
//! kernels is launched, loaded into the device's context, and kept there with its
//! functions for the life of the [`Cuda`]. The PTX is also kept for the life of the
//! process, so that every [`Cuda`] it opens (the tests open many) compiles a module
//! once, and on disk (see [`cache_dir`]), so that a program's first step does not
//! wait for NVRTC again; the driver caches the machine code built from it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cudarc::driver::CudaFunction;
use cudarc::nvrtc::{CompileError, CompileOptions, Ptx, compile_ptx_with_opts};

use super::Cuda;
use super::launch::driver_err;
use crate::{Error, Result};

/// One op's kernels: a CUDA C++ source and the `extern "C"` kernels it defines.
#[derive(Debug)]
pub struct KernelSource {
    /// The module's name (the op's).
    pub name: &'static str,
    /// The source, prelude included.
    pub code: &'static str,
    /// The kernels it defines, `{op}_{fwd|bwd}_{dtype}`, with `_{rows}x{cols}` after it
    /// for the GEMM kernels, which are compiled once for each tile.
    pub kernels: &'static [&'static str],
    /// Whether NVRTC may contract a product and a sum into one FMA. Off for the
    /// element-wise ops, which then round every step as the CPU backend does; on for
    /// the matrix products, whose summation order differs from the CPU's anyway.
    pub fmad: bool,
}

/// Every kernel source of the backend: the storage's, then each op's.
pub fn sources() -> impl Iterator<Item = &'static KernelSource> {
    std::iter::once(&super::device::STORAGE_MODULE).chain(crate::ops::CUDA_SOURCES)
}

/// Whether the NVRTC library can be loaded (cudarc panics on first use otherwise).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to open the library with `dlopen`; no symbol is called.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Compiles `source` for `arch` (`sm_90`, `compute_75`, ...) and returns the PTX text.
///
/// Fails with [`Error::CudaUnavailable`] when NVRTC cannot be loaded, and with
/// [`Error::KernelCompile`] (carrying NVRTC's log) when the source does not compile.
pub fn compile_ptx(source: &KernelSource, arch: &str) -> Result<String> {
    Ok(compile(source, arch)?.to_src())
}

/// NVRTC compiles run in this process, for the test of the cache.
#[cfg(test)]
static COMPILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn compile(source: &KernelSource, arch: &str) -> Result<Ptx> {
    #[cfg(test)]
    COMPILES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if !nvrtc_available() {
        return Err(Error::CudaUnavailable {
            reason: "the NVRTC library (libnvrtc.so) was not found: install the CUDA toolkit \
                     or the `nvidia-cuda-nvrtc` wheel and add its folder to LD_LIBRARY_PATH"
                .into(),
        });
    }
    let opts = CompileOptions {
        fmad: Some(source.fmad),
        options: vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()],
        name: Some(format!("{}.cu", source.name)),
        ..CompileOptions::default()
    };
    compile_ptx_with_opts(source.code, opts).map_err(|e| Error::KernelCompile {
        module: source.name,
        log: match e {
            CompileError::CompileError { nvrtc, log, .. } => {
                format!("{nvrtc:?}\n{}", log.to_string_lossy())
            }
            other => format!("{other:?}"),
        },
    })
}

/// The PTX of `source` for `arch`, compiled at most once a process (two threads asking
/// at once may both compile; the first to finish is kept).
fn cached_ptx(source: &KernelSource, arch: &str) -> Result<Ptx> {
    type Cache = Mutex<HashMap<(&'static str, String), String>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (source.name, arch.to_string());
    if let Some(text) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return Ok(Ptx::from_src(text.clone()));
    }
    let dir = disk_dir();
    let text = match dir.as_deref().and_then(|d| disk_load(d, source, arch)) {
        Some(text) => text,
        None => {
            let text = compile(source, arch)?.to_src();
            if let Some(d) = &dir {
                disk_store(d, source, arch, &text);
            }
            text
        }
    };
    let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
    Ok(Ptx::from_src(cache.entry(key).or_insert(text).clone()))
}

/// Where compiled PTX is kept between runs: `$KILN_CACHE_DIR/ptx`, else
/// `$XDG_CACHE_HOME/kiln/ptx`, else `~/.cache/kiln/ptx`; `None` (no disk cache) when
/// none of them is set. A file is named by the module, the architecture and a hash of
/// everything its PTX depends on (the source, the options, NVRTC's version), and
/// starts with that key in full, so a stale or clashing file is never used; a file
/// that cannot be read or written only means compiling again.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("KILN_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("kiln")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/kiln")))
        .map(|d| d.join("ptx"))
}

/// The disk cache the backend uses: [`cache_dir`], or none in this crate's unit
/// tests, which leave the user's cache alone (one test checks the cache in a folder of
/// its own).
fn disk_dir() -> Option<PathBuf> {
    if cfg!(test) { None } else { cache_dir() }
}

/// What a module's PTX depends on, in full, and the file in `dir` it is kept in.
fn disk_entry(dir: &Path, source: &KernelSource, arch: &str) -> Option<(String, PathBuf)> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is loaded (the caller compiles or has compiled with it), and the
    // call writes two integers.
    let version = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if version != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return None;
    }
    let key = format!(
        "// kiln ptx: {} {arch} fmad={} nvrtc={major}.{minor}\n{}",
        source.name, source.fmad, source.code
    );
    // FNV-1a: a name, not a check (the file holds the key itself).
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let file = dir.join(format!("{}-{arch}-{hash:016x}.ptx", source.name));
    Some((key, file))
}

fn disk_load(dir: &Path, source: &KernelSource, arch: &str) -> Option<String> {
    let (key, file) = disk_entry(dir, source, arch)?;
    let text = std::fs::read_to_string(file).ok()?;
    text.strip_prefix(&key)?
        .strip_prefix('\n')
        .map(str::to_string)
}

fn disk_store(dir: &Path, source: &KernelSource, arch: &str, ptx: &str) {
    let Some((key, file)) = disk_entry(dir, source, arch) else {
        return;
    };
    // Written aside and renamed, so that a reader never sees half a file.
    let partial = file.with_extension(format!("{}.partial", std::process::id()));
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&partial, format!("{key}\n{ptx}")))
        .and_then(|()| std::fs::rename(&partial, &file));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
}

impl Cuda {
    /// Kernel `name` of `module`, compiling and loading the module on first use; every
    /// launch looks its kernel up here, which counts it.
    pub(crate) fn function(
        &self,
        module: &'static KernelSource,
        name: &'static str,
    ) -> Result<CudaFunction> {
        let inner = self.inner();
        inner
            .launches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut functions = inner
            .functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = functions.get(name) {
            return Ok(f.clone());
        }
        let loaded = {
            let mut modules = inner.modules.lock().unwrap_or_else(PoisonError::into_inner);
            match modules.get(module.name) {
                Some(m) => Arc::clone(m),
                None => {
                    let ptx = cached_ptx(module, &inner.arch)?;
                    let m = inner
                        .ctx
                        .load_module(ptx)
                        .map_err(|e| driver_err("load_module", e))?;
                    modules.insert(module.name, Arc::clone(&m));
                    m
                }
            }
        };
        let f = loaded
            .load_function(name)
            .map_err(|e| driver_err("load_function", e))?;
        functions.insert(name, f.clone());
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn a_module_compiles_once_a_process() {
        if !nvrtc_available() {
            let _ = writeln!(std::io::stderr(), "skipped: no NVRTC library");
            return;
        }
        let source = &super::super::device::STORAGE_MODULE;
        let first = cached_ptx(source, "compute_75").unwrap().to_src();
        let before = COMPILES.load(Ordering::SeqCst);
        let again = cached_ptx(source, "compute_75").unwrap().to_src();
        assert_eq!(COMPILES.load(Ordering::SeqCst), before, "compiled again");
        assert_eq!(first, again);
        assert!(first.contains("fill_group_fwd_f32"));
    }

    #[test]
    fn ptx_kept_on_disk_is_used_only_for_its_own_key() {
        if !nvrtc_available() {
            let _ = writeln!(std::io::stderr(), "skipped: no NVRTC library");
            return;
        }
        let source = &crate::ops::dropout::cuda::MODULE;
        let arch = "compute_80";
        let text = compile(source, arch).unwrap().to_src();
        let dir = std::env::temp_dir().join(format!("kiln-ptx-test-{}", std::process::id()));
        let (key, file) = disk_entry(&dir, source, arch).unwrap();
        assert!(key.ends_with(source.code) && key.contains(arch));
        assert_eq!(disk_load(&dir, source, arch), None);
        disk_store(&dir, source, arch, &text);
        assert_eq!(
            disk_load(&dir, source, arch).as_deref(),
            Some(text.as_str())
        );
        // A file whose key differs (another source under the same name) is not used.
        std::fs::write(&file, format!("// other\n{text}")).unwrap();
        assert_eq!(disk_load(&dir, source, arch), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
