//! Every kernel source compiles to PTX with NVRTC, for the H200 (`sm_90`) and for a
//! portable target (`compute_75`), and defines the kernels its launch code names.
//!
//! Needs only the NVRTC library (no GPU, no driver): the `nvidia-cuda-nvrtc` wheel's
//! `libnvrtc.so.13` on `LD_LIBRARY_PATH` is enough. Without it the test says it skipped.

#![cfg(feature = "cuda")]

use std::io::Write;

use kiln_kernels::cuda::module::{compile_ptx, nvrtc_available, sources};

const ARCHS: [&str; 2] = ["sm_90", "compute_75"];

#[test]
fn every_kernel_source_compiles_to_ptx() {
    if !nvrtc_available() {
        let _ = writeln!(
            std::io::stderr(),
            "skipped: the NVRTC library (libnvrtc.so.13) is not on LD_LIBRARY_PATH"
        );
        return;
    }
    let mut compiled = 0;
    let mut failures = Vec::new();
    for source in sources() {
        for arch in ARCHS {
            match compile_ptx(source, arch) {
                Ok(ptx) => {
                    for kernel in source.kernels {
                        if !ptx.contains(&format!(".entry {kernel}(")) {
                            failures
                                .push(format!("{} ({arch}): no kernel `{kernel}`", source.name));
                        }
                    }
                    compiled += 1;
                }
                Err(err) => failures.push(format!("{} ({arch}): {err}", source.name)),
            }
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "nvrtc: {compiled} of {} compiles passed",
        sources().count() * ARCHS.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn kernel_names_follow_the_scheme_and_are_unique() {
    let mut seen = std::collections::HashSet::new();
    for source in sources() {
        for kernel in source.kernels {
            // A GEMM kernel is compiled once a tile: `..._f32_128x64`.
            let base = match kernel.rsplit_once('_') {
                Some((base, tile))
                    if tile.split_once('x').is_some_and(|(r, c)| {
                        r.parse::<u32>().is_ok() && c.parse::<u32>().is_ok()
                    }) =>
                {
                    base
                }
                _ => kernel,
            };
            assert!(
                base.ends_with("_fwd_f32") || base.ends_with("_bwd_f32"),
                "{kernel} is not `{{op}}_{{fwd|bwd}}_{{dtype}}[_{{tile}}]`"
            );
            assert!(seen.insert(*kernel), "{kernel} is defined twice");
        }
    }
}
