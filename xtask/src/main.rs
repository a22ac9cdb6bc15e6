//! `cargo xtask <task>`: kiln's project chores, one module per task.
//!
//! - `bench [--quick] [--filter REGEX] [--threads N] [--rounds N]`: run the criterion benchmarks
//!   and write `target/kiln-bench/report.{md,json}`.

mod bench;
mod compare;
mod peer;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let result = match args.next().as_deref() {
        Some("bench") => bench::run(args.collect()),
        Some(other) => Err(format!("unknown task `{other}`; tasks: bench")),
        None => Err("usage: cargo xtask <task>; tasks: bench".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
