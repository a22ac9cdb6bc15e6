//! `cargo xtask <task>`: kiln's project chores, one module per task.
//!
//! - `bench [--quick] [--filter REGEX] [--threads N] [--rounds N]`: run the criterion benchmarks
//!   and write `target/kiln-bench/report.{md,json}`;
//! - `bench --gpu [--quick]`: the GPU benchmark against PyTorch on the same GPU, written to
//!   `target/kiln-bench/gpu.{md,json}`;
//! - `gpu-bundle DIR`: the CUDA tests, the GPU benchmark and a script that runs them, built
//!   here for a GPU machine without Rust;
//! - `gpu-report --criterion DIR [--torch FILE] --out DIR`: the GPU report from results
//!   gathered there;
//! - `user-crate`: a new user's program in a crate of its own, built in debug and run;
//! - `miri`: the CPU backend's unsafe code under Miri (a nightly compiler with Miri).
//!
//! The task modules (`bench`, `gpu`) use the shared ones below them and never each
//! other: `compare` (the benchmark models against PyTorch), `gpu_report`, `peer` (the PyTorch
//! scripts) and `results` (criterion's results as rows, report files).

mod bench;
mod compare;
mod gpu;
mod gpu_report;
mod miri;
mod peer;
mod results;
mod user_crate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kiln's project chores.
#[derive(Parser)]
#[command(bin_name = "cargo xtask", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run the criterion benchmarks (kiln against PyTorch where it is installed) and
    /// write target/kiln-bench/report.{md,json}.
    Bench(bench::Options),
    /// Build the CUDA tests, the GPU benchmark and a script that runs them, for a GPU
    /// machine without Rust.
    GpuBundle {
        /// The folder to fill.
        dir: PathBuf,
    },
    /// Write the GPU report from results gathered on a GPU machine.
    GpuReport {
        /// Criterion's folder from the GPU machine.
        #[arg(long, value_name = "DIR")]
        criterion: PathBuf,
        /// PyTorch's JSON lines from the same machine.
        #[arg(long, value_name = "FILE")]
        torch: Option<PathBuf>,
        /// Where to write the report.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Build, in debug, and run a new user's program in a crate of its own.
    UserCrate,
    /// Run the CPU backend's tests of unsafe code under Miri (needs a nightly
    /// toolchain with the miri component).
    Miri,
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Bench(options) => bench::run(&options),
        Task::GpuBundle { dir } => gpu::bundle(&dir),
        Task::GpuReport {
            criterion,
            torch,
            out,
        } => gpu::report(&criterion, torch.as_deref(), &out),
        Task::UserCrate => user_crate::run(),
        Task::Miri => miri::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
