//! PyTorch as the peer: runs the scripts under `benches/python/` on the same machine
//! in the same run, when a Python with torch is there, and reads their JSON lines.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The Python interpreter: `KILN_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("KILN_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Whether `python` can import torch; says how to get it when not.
pub fn torch_available() -> bool {
    let python = python();
    let ok = Command::new(&python)
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!(
            "xtask: PyTorch is not importable from `{python}`, so kiln is reported alone. \
             To compare: `pip install torch --index-url https://download.pytorch.org/whl/cpu` \
             (or point KILN_PYTHON at a Python that has it)."
        );
    }
    ok
}

/// Whether `python` can import torch and torch sees a CUDA device; says so when not.
pub fn torch_cuda_available() -> bool {
    let python = python();
    let ok = Command::new(&python)
        .args([
            "-c",
            "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!(
            "xtask: `{python}` has no PyTorch with CUDA, so kiln's GPU figures are reported alone \
             (point KILN_PYTHON at a Python whose torch sees the GPU to compare)."
        );
    }
    ok
}

/// Runs `script` with `args` from the workspace root; one JSON object a line.
pub fn run(root: &Path, script: &str, args: &[String]) -> Result<Vec<Value>, String> {
    println!("xtask: running the PyTorch peer {script}");
    let output = Command::new(python())
        .current_dir(root)
        .arg(script)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{script} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}
