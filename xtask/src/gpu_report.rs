//! The GPU report, `gpu.{md,json}`: the GPU benchmark's results
//! (`benches/benches/gpu.rs`, built with `--features cuda`) beside PyTorch's on the
//! same GPU (`benches/python/gpu_torch.py`): the seed CNN's workloads against their
//! targets, and SGEMM against cuBLAS. `bench --gpu` writes it under
//! `target/kiln-bench` after running both; `gpu-report` from results gathered on
//! another machine.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use crate::peer;
use crate::results::{Row, collect, write};

/// The seed CNN's workloads in the report: (what, workload, batch, the least ratio to
/// PyTorch that kiln aims at, 0 for none). kiln's criterion id is
/// `gpu_seed_cnn_batch{batch}/{workload}`, PyTorch's workload `seed_cnn_{workload}`.
const STEP_TARGETS: &[(&str, &str, u64, f64)] = &[
    ("training step, batch 64", "train_step", 64, 1.5),
    ("training step, batch 1024", "train_step", 1024, 0.9),
    ("forward + backward, batch 64", "forward_backward", 64, 0.0),
    (
        "forward + backward, batch 1024",
        "forward_backward",
        1024,
        0.0,
    ),
    ("inference, batch 64", "inference", 64, 0.0),
    ("inference, batch 1024", "inference", 1024, 0.0),
];

/// The hand-written SGEMM must reach this share of cuBLAS at 4096^3.
const SGEMM_TARGET: f64 = 0.6;

/// The rest of `bench --gpu`, after the GPU benchmark ran (since `started`): PyTorch
/// on the same GPU, then the report.
pub fn run(root: &Path, started: std::time::SystemTime, quick: bool) -> Result<(), String> {
    let rows = collect(&root.join("target/criterion"), started)?;
    if rows.is_empty() {
        println!("xtask: the GPU benchmark measured nothing (no CUDA device); no report");
        return Ok(());
    }
    let torch = if peer::torch_cuda_available() {
        let args: Vec<String> = if quick {
            vec!["--rounds".into(), "3".into()]
        } else {
            Vec::new()
        };
        peer::run(root, "benches/python/gpu_torch.py", &args)?
    } else {
        Vec::new()
    };
    write_report(&rows, &torch, &root.join("target/kiln-bench"))
}

/// Writes `gpu.md` and `gpu.json` under `out` and prints the tables.
pub fn write_report(rows: &[Row], torch: &[Value], out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let (md, summary) = tables(rows, torch);
    write(&out.join("gpu.md"), &md)?;
    let rows_json: Vec<Value> = rows.iter().map(Row::to_json).collect();
    let text = serde_json::to_string_pretty(&json!({
        "benchmarks": rows_json,
        "torch": torch,
        "comparison": summary,
    }))
    .map_err(|e| e.to_string())?;
    write(&out.join("gpu.json"), &text)?;
    println!("{md}");
    println!("xtask: wrote {}", out.join("gpu.md").display());
    Ok(())
}

/// PyTorch's line for `workload` (at `batch`, for the model's workloads).
fn torch_line<'a>(torch: &'a [Value], workload: &str, batch: Option<u64>) -> Option<&'a Value> {
    torch.iter().find(|l| {
        l["workload"].as_str() == Some(workload)
            && batch.is_none_or(|b| l["batch"].as_u64() == Some(b))
    })
}

fn tables(rows: &[Row], torch: &[Value]) -> (String, Value) {
    let rate = |id: &str| {
        rows.iter()
            .find(|r| r.id == id)
            .and_then(|r| r.per_second(r.median_ns))
    };
    let peer = torch.first().map_or("PyTorch (not run)".to_string(), |l| {
        format!(
            "PyTorch {} eager{}",
            l["torch"].as_str().unwrap_or("?"),
            if l["tf32"].as_bool() == Some(true) {
                ", TF32"
            } else {
                ", fp32"
            }
        )
    });
    let device = torch
        .first()
        .and_then(|l| l["device"].as_str())
        .unwrap_or("the GPU");
    let mut md = format!(
        "## The seed CNN on {device}\n\n| workload | kiln images/s | {peer} images/s | kiln / PyTorch | target |\n|---|---|---|---|---|\n"
    );
    let mut summary = json!({});
    let ratio_cell = |ratio: Option<f64>, least: f64| match ratio {
        Some(r) if least > 0.0 => (
            format!("{r:.2}x"),
            format!(
                ">= {least}x ({})",
                if r >= least { "met" } else { "missed" }
            ),
        ),
        Some(r) => (format!("{r:.2}x"), "-".into()),
        None => (
            "-".into(),
            if least > 0.0 {
                format!(">= {least}x")
            } else {
                "-".into()
            },
        ),
    };
    for &(what, workload, batch, least) in STEP_TARGETS {
        let kiln_id = format!("gpu_seed_cnn_batch{batch}/{workload}");
        let kiln = rate(&kiln_id);
        let theirs = torch_line(torch, &format!("seed_cnn_{workload}"), Some(batch))
            .and_then(|l| l["median"].as_f64());
        let ratio = kiln.zip(theirs).map(|(k, t)| k / t);
        let (r, target) = ratio_cell(ratio, least);
        let show = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        let _ = writeln!(
            md,
            "| {what} | {} | {} | {r} | {target} |",
            show(kiln),
            show(theirs)
        );
        summary[&kiln_id] =
            json!({ "kiln": kiln, "torch": theirs, "ratio": ratio, "target": least });
    }
    if let Some(launch) = rows.iter().find(|r| r.id == "gpu_launch/fill_one_value") {
        let _ = writeln!(
            md,
            "\nOne kernel launch (a fill of one value, back to back, the GPU waited for \
             after the run): {:.2} us.",
            launch.median_ns / 1e3
        );
        summary["launch_us"] = json!(launch.median_ns / 1e3);
    }
    md.push_str(
        "\n## SGEMM, fp32, square\n\n| side | kiln GFLOP/s | cuBLAS (torch.mm) GFLOP/s | kiln / cuBLAS | target |\n|---|---|---|---|---|\n",
    );
    for side in [1024u64, 2048, 4096] {
        let kiln = rate(&format!("gpu_sgemm/{side}"));
        let cublas =
            torch_line(torch, &format!("sgemm_{side}"), None).and_then(|l| l["median"].as_f64());
        let share = kiln.zip(cublas).map(|(k, c)| k / c);
        let target = if side == 4096 {
            match share {
                Some(s) => format!(
                    ">= {:.0} % ({})",
                    100.0 * SGEMM_TARGET,
                    if s >= SGEMM_TARGET { "met" } else { "missed" }
                ),
                None => format!(">= {:.0} %", 100.0 * SGEMM_TARGET),
            }
        } else {
            "-".into()
        };
        let g = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.0}", v / 1e9));
        let s = share.map_or("-".into(), |s| format!("{:.0} %", 100.0 * s));
        let _ = writeln!(
            md,
            "| {side} | {} | {} | {s} | {target} |",
            g(kiln),
            g(cublas)
        );
        summary[format!("sgemm_{side}")] =
            json!({ "kiln": kiln, "cublas": cublas, "share": share });
    }
    (md, summary)
}
