//! The CUDA kernels, run on the host: each program in `tests/emulated/` compiles
//! kernel sources as C++ against a small emulation of CUDA (`emu.h`: blocks one after
//! another, a block's threads as real threads, barriers for `__syncthreads` and warp
//! shuffles) and checks them against direct loops. This is what tests the kernels'
//! indexing and synchronisation on machines without a GPU; the parity tests beside
//! each op compare with the CPU backend where a GPU is present.
//!
//! Needs a C++20 compiler (`$CXX`, else `c++`); without one the tests say they skipped.

// The helpers below are test code too: a failure to write or start a file is a failed
// test.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn compiler() -> &'static str {
    static CXX: OnceLock<String> = OnceLock::new();
    CXX.get_or_init(|| std::env::var("CXX").unwrap_or_else(|_| "c++".into()))
}

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("emulated");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether the compiler exists and has what `emu.h` needs (`std::barrier`,
/// `std::atomic_ref`).
fn compiler_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let probe = out_dir().join("probe.cpp");
        std::fs::write(
            &probe,
            "#include <atomic>\n#include <barrier>\nint main() { std::barrier<> b(1); \
             float f = 0; std::atomic_ref<float>(f).fetch_add(1.0f); b.arrive_and_wait(); \
             return f == 1.0f ? 0 : 1; }\n",
        )
        .unwrap();
        Command::new(compiler())
            .args(["-std=c++20", "-pthread", "-o"])
            .arg(out_dir().join("probe"))
            .arg(&probe)
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Compiles and runs `tests/emulated/<program>.cpp` with `args`; it prints one line a
/// check and exits with the number of failures.
fn run(program: &str, args: &[String]) {
    if !compiler_ready() {
        let _ = writeln!(
            std::io::stderr(),
            "skipped: no C++20 compiler (`{}`) to run the emulated kernels",
            compiler()
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = out_dir().join(program);
    let compiled = Command::new(compiler())
        .args([
            "-std=c++20",
            "-O1",
            "-Wno-unknown-pragmas",
            "-pthread",
            "-I",
        ])
        .arg(root.join("src"))
        .arg("-I")
        .arg(root.join("tests/emulated"))
        .arg("-o")
        .arg(&binary)
        .arg(root.join(format!("tests/emulated/{program}.cpp")))
        .output()
        .unwrap();
    assert!(
        compiled.status.success(),
        "{program}.cpp did not compile:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let ran = Command::new(&binary).args(args).output().unwrap();
    let report = String::from_utf8_lossy(&ran.stdout);
    assert!(ran.status.success(), "{program}:\n{report}");
    assert!(
        report.contains("ok "),
        "{program} checked nothing:\n{report}"
    );
}

#[test]
fn matmul_and_convolutions() {
    run("gemm", &[]);
}

#[test]
fn softmax_bias_gradient_and_sum_of_squares() {
    run("reductions", &[]);
}

#[test]
fn pooling_bit_for_bit() {
    run("pool2d", &[]);
}

#[test]
fn metrics() {
    run("metric", &[]);
}

#[test]
fn losses() {
    run("loss", &[]);
}

#[test]
fn storage_fills() {
    run("storage", &[]);
}

#[test]
fn optimizer() {
    run("optimizer", &[]);
}

#[test]
fn moving_average() {
    run("ema", &[]);
}

#[test]
fn residual_sum() {
    run("add", &[]);
}

#[test]
fn batch_normalisation() {
    run("batch_norm", &[]);
}

#[test]
fn concatenation() {
    run("concat", &[]);
}

#[test]
fn embedding_gather_and_scatter() {
    run("embedding", &[]);
}

#[test]
fn lstm_through_time() {
    run("recurrent", &[]);
}

#[test]
fn gru_and_simple_rnn_through_time() {
    run("gru", &[]);
}

#[test]
fn dropout_mask_is_the_cpu_mask() {
    let (seed, rate) = (u64::MAX - 5, 0.3f32);
    let mut args = vec![seed.to_string(), rate.to_string()];
    args.extend((0..500).map(|i| kiln_kernels::rng::uniform_at(seed, i).to_string()));
    run("dropout", &args);
}

#[test]
fn layer_normalisation() {
    run("layer_norm", &[]);
}

#[test]
fn fused_attention() {
    run("attention", &[]);
}
