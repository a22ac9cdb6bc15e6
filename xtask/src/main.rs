//! `cargo xtask <task>`: kiln's project chores, one module per task.
//!
//! - `bench [--quick] [--filter REGEX] [--threads N] [--rounds N]`: run the criterion benchmarks
//!   and write `target/kiln-bench/report.{md,json}`;
//! - `bench --gpu [--quick]`: the GPU benchmark against PyTorch on the same GPU, written to
//!   `target/kiln-bench/gpu.{md,json}`;
//! - `gpu-bundle DIR`: the CUDA tests, the GPU benchmark and a script that runs them, built
//!   here for a GPU machine without Rust;
//! - `gpu-report --criterion DIR [--torch FILE] --out DIR`: the GPU report from results
//!   gathered there.
//!
//! The task modules (`bench`, `gpu`) use the shared ones below them and never each
//! other: `compare` (the benchmark models against PyTorch), `gpu_report`, `peer` (the PyTorch
//! scripts) and `results` (criterion's results as rows, report files).

mod bench;
mod compare;
mod gpu;
mod gpu_report;
mod peer;
mod results;

use std::process::ExitCode;

/// The tasks, for messages.
const TASKS: &str = "bench, gpu-bundle, gpu-report";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let result = match args.next().as_deref() {
        Some("bench") => bench::run(args.collect()),
        Some("gpu-bundle") => gpu::bundle(args.collect()),
        Some("gpu-report") => gpu::report(args.collect()),
        Some(other) => Err(format!("unknown task `{other}`; tasks: {TASKS}")),
        None => Err(format!("usage: cargo xtask <task>; tasks: {TASKS}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
