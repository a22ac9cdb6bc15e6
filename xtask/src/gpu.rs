//! The GPU tasks besides `bench --gpu` (which `bench` runs and `gpu_report` writes up):
//!
//! - `gpu-report --criterion DIR [--torch FILE] --out DIR`: the report of `bench --gpu`
//!   from results gathered elsewhere (criterion's folder and the peer's JSON lines);
//! - `gpu-bundle DIR`: release builds of the CUDA tests (the kernels against the CPU,
//!   and `fit` on the GPU), the GPU benchmark, the quickstart and this tool, stripped,
//!   with `run.sh`, which runs them all on a GPU machine that has no Rust toolchain and
//!   writes the report.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::gpu_report::write_report;
use crate::results::{collect, workspace_root, write};

/// `gpu-report`: the report from a criterion folder and the peer's output.
pub fn report(criterion: &Path, torch: Option<&Path>, out: &Path) -> Result<(), String> {
    let rows = collect(criterion, std::time::UNIX_EPOCH)?;
    if rows.is_empty() {
        return Err(format!(
            "no criterion results under {}",
            criterion.display()
        ));
    }
    let torch = match torch {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect(),
        None => Vec::new(),
    };
    write_report(&rows, &torch, out)
}

/// `gpu-bundle DIR`: everything the GPU checks need, built here, for a machine with a
/// GPU and no Rust toolchain.
pub fn bundle(dir: &Path) -> Result<(), String> {
    let root = workspace_root();
    std::fs::create_dir_all(dir.join("bin"))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let builds: &[(&str, &[&str])] = &[
        (
            "kernels-tests",
            &[
                "test",
                "--release",
                "-p",
                "kiln-kernels",
                "--features",
                "cuda",
                "--lib",
                "--no-run",
            ],
        ),
        (
            "training-tests",
            &[
                "test",
                "--release",
                "-p",
                "kiln",
                "--features",
                "cuda",
                "--test",
                "gpu",
                "--no-run",
            ],
        ),
        (
            "gpu-bench",
            &[
                "bench",
                "-p",
                "kiln-benches",
                "--features",
                "cuda",
                "--bench",
                "gpu",
                "--no-run",
            ],
        ),
        (
            "quickstart",
            &[
                "build",
                "--release",
                "-p",
                "kiln-examples",
                "--features",
                "cuda",
                "--example",
                "quickstart",
            ],
        ),
    ];
    for (name, cargo_args) in builds {
        let binary = build_one(&root, cargo_args)?;
        install(&binary, &dir.join("bin").join(name))?;
    }
    // This tool, for the report on the other machine.
    let xtask = build_one(
        &root,
        &[
            "build",
            "--release",
            "--manifest-path",
            "xtask/Cargo.toml",
            "--target-dir",
            "target/xtask",
        ],
    )?;
    install(&xtask, &dir.join("bin/xtask"))?;
    for script in ["gpu_torch.py", "models.py", "kernel_times.py"] {
        std::fs::copy(root.join("benches/python").join(script), dir.join(script))
            .map_err(|e| format!("cannot copy {script}: {e}"))?;
    }
    let run = dir.join("run.sh");
    write(&run, RUN_SH)?;
    set_executable(&run)?;
    println!(
        "xtask: bundle in {}; on the GPU machine run `{}/run.sh OUT_DIR`",
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// Runs `cargo <args> --message-format=json` and returns the one executable built
/// for the package asked for.
fn build_one(root: &Path, args: &[&str]) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    println!("xtask: cargo {}", args.join(" "));
    let output = Command::new(&cargo)
        .current_dir(root)
        .args(args)
        .arg("--message-format=json")
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo {} failed", args.join(" ")));
    }
    let executables: Vec<PathBuf> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .collect();
    match executables.as_slice() {
        [one] => Ok(one.clone()),
        other => Err(format!(
            "cargo {} built {} executables, expected one",
            args.join(" "),
            other.len()
        )),
    }
}

/// Copies `binary` to `to` without its symbols and debug information.
fn install(binary: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(binary, to).map_err(|e| format!("cannot copy {}: {e}", binary.display()))?;
    let stripped = Command::new("strip").arg(to).status();
    if !stripped.is_ok_and(|s| s.success()) {
        println!(
            "xtask: `strip` failed on {}; kept with symbols",
            to.display()
        );
    }
    Ok(())
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot make {} executable: {e}", path.display()))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> Result<(), String> {
    Ok(())
}

/// The bundle's script.
const RUN_SH: &str = include_str!("gpu_run.sh");
