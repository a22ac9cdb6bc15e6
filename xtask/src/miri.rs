//! `cargo xtask miri`: the CPU backend's unsafe code under Miri, which interprets each
//! test and stops at the first out-of-bounds access, use after free, data race or
//! misaligned read. Miri needs a nightly compiler with its component
//! (`rustup +nightly component add miri`); kiln itself stays on its pinned stable one,
//! so this runs apart from the workspace's build, in `target/miri`.
//!
//! What it covers: the packed SGEMM (packing, the portable micro-kernel's raw
//! pointers, the blocking edges, the split of `k` between threads and its sum), the
//! patch gathering of convolutions, the thread pool's hand-off of borrowed tasks, the
//! per-tensor groups and the storage views. Miri runs no AVX2 or AVX-512 code (it
//! reports no such CPU), so the wide kernels are checked by the ordinary tests alone,
//! against the same reference.

use std::process::Command;

use crate::results::workspace_root;

/// The test paths of `kiln-kernels` that hold unsafe code or drive it.
pub const TESTS: &[&str] = &[
    "cpu::gemm",
    "cpu::pool",
    "group",
    "storage::tests::fills_many_buffers_on_cpu",
];

pub fn run() -> Result<(), String> {
    let root = workspace_root();
    // Through rustup: the nightly's cargo, not the pinned one that runs this task.
    let mut command = Command::new("rustup");
    command
        .current_dir(&root)
        .args(["run", "nightly", "cargo", "miri", "test"])
        .args(["-p", "kiln-kernels", "--lib", "--"])
        .args(TESTS)
        // Its own folder: Miri's artefacts are built by another compiler.
        .env("CARGO_TARGET_DIR", root.join("target/miri"))
        // The pool reads the core count and KILN_* variables from the host.
        .env("MIRIFLAGS", "-Zmiri-disable-isolation")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTUP_TOOLCHAIN");
    println!(
        "xtask: {} tests under Miri (this takes minutes)",
        TESTS.join(", ")
    );
    let status = command
        .status()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "Miri failed ({status}); if Miri is missing: rustup toolchain install nightly \
             --component miri"
        ))
    }
}
