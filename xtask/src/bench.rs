//! `cargo xtask bench`: runs kiln's criterion benchmarks, then gathers criterion's
//! estimates into one report (median time per iteration, min and max of the
//! confidence interval, and throughput) at `target/kiln-bench/report.{md,json}`. With
//! `--gpu`, the GPU benchmark instead, written up by `gpu_report`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::compare::BenchModel;
use crate::results::{Row, collect, workspace_root, write};
use crate::{compare, gpu_report, peer};

/// The benchmark binaries of the `kiln-benches` package, in the order they run.
const BENCHES: &[&str] = &["peak", "gemm", "layers", "optim", "data"];

/// `cargo xtask bench`'s options.
#[derive(clap::Args)]
pub struct Options {
    /// Each benchmark briefly, one round of each model.
    #[arg(long)]
    quick: bool,
    /// The GPU benchmark instead of the CPU ones (a build with CUDA and a GPU).
    #[arg(long)]
    gpu: bool,
    /// Only the benchmarks whose names match this regex.
    #[arg(long, value_name = "REGEX")]
    filter: Option<String>,
    /// CPU threads (default: 1 and 2 for the models, every core otherwise).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    threads: Option<u64>,
    /// Alternations of kiln and PyTorch for each model's configurations.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: u64,
}

impl Options {
    fn threads(&self) -> Option<usize> {
        self.threads.map(|t| t as usize)
    }
}

/// Runs one criterion benchmark binary (built with the `cuda` feature for `--gpu`),
/// with `filter` when given.
fn cargo_bench(
    root: &Path,
    bench: &str,
    options: &Options,
    filter: Option<&str>,
) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root).args(["bench", "-p", "kiln-benches"]);
    if options.gpu {
        cmd.args(["--features", "cuda"]);
    }
    cmd.args(["--bench", bench, "--"]);
    if options.quick {
        cmd.args([
            "--warm-up-time",
            "0.2",
            "--measurement-time",
            "0.5",
            "--sample-size",
            "10",
        ]);
    }
    if let Some(filter) = filter {
        cmd.arg(filter);
    }
    if let Some(threads) = options.threads {
        cmd.env("KILN_THREADS", threads.to_string());
    }
    println!(
        "xtask: running the `{bench}` benchmarks{}",
        filter.map_or(String::new(), |f| format!(" ({f})"))
    );
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("the `{bench}` benchmarks failed ({status})"));
    }
    Ok(())
}

pub fn run(options: &Options) -> Result<(), String> {
    let root = workspace_root();
    let criterion_dir = root.join("target/criterion");
    let started = std::time::SystemTime::now();
    if options.gpu {
        cargo_bench(&root, "gpu", options, options.filter.as_deref())?;
        return gpu_report::run(&root, started, options.quick);
    }
    for bench in BENCHES {
        cargo_bench(&root, bench, options, options.filter.as_deref())?;
    }
    // The models, configuration by configuration, kiln then PyTorch, so that drift on
    // a shared machine hits both.
    let wants = |name: &str| options.filter.as_ref().is_none_or(|f| f.contains(name));
    let models: Vec<&BenchModel> = compare::MODELS.iter().filter(|m| wants(m.name)).collect();
    let with_torch = (!models.is_empty() || wants("optim")) && peer::torch_available();
    let mut torch_models = Vec::new();
    let mut model_rounds: Vec<Row> = Vec::new();
    let rounds = if options.quick {
        1
    } else {
        options.rounds as usize
    };
    for model in &models {
        for round in 0..rounds {
            println!("xtask: {}, round {} of {rounds}", model.title, round + 1);
            for (batch, threads) in compare::configs(model, options.threads()) {
                let group = format!("{}_batch{batch}_threads{threads}/", model.name);
                let at = std::time::SystemTime::now();
                cargo_bench(&root, "models", options, Some(&group))?;
                model_rounds.extend(
                    collect(&criterion_dir, at)?
                        .into_iter()
                        .filter(|r| r.id.starts_with(&group)),
                );
                if with_torch {
                    let mut args = vec![
                        "--model".to_string(),
                        model.name.to_string(),
                        "--batch".to_string(),
                        batch.to_string(),
                        "--threads".to_string(),
                        threads.to_string(),
                    ];
                    if options.quick {
                        args.extend(["--iters", "3", "--rounds", "3"].map(String::from));
                    }
                    torch_models.extend(peer::run(&root, model.peer, &args)?);
                }
            }
        }
    }
    let gpt_torch = gpt_rounds(&root, options, wants("gpt"))?;
    let rows = collect(&criterion_dir, started)?;
    if rows.is_empty() {
        return Err(format!(
            "no criterion results under {}",
            criterion_dir.display()
        ));
    }
    let out = root.join("target/kiln-bench");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let threads = options.threads().unwrap_or(2);
    let torch = if wants("optim") && with_torch {
        peer::run(
            &root,
            "benches/python/optim_torch.py",
            &["--threads".to_string(), threads.to_string()],
        )?
    } else {
        Vec::new()
    };
    // Each model's rows are the medians of its rounds.
    let mut with_rounds: Vec<Row> = rows
        .into_iter()
        .filter(|r| compare::model_of(&r.id).is_none())
        .collect();
    with_rounds.extend(compare::combine_rounds(&model_rounds));
    with_rounds.sort_by(|a, b| a.id.cmp(&b.id));
    let rows = with_rounds;
    let torch_models = compare::combine_torch_rounds(&torch_models);
    let (compare_md, compare_json) = compare::models(&rows, &torch_models);
    let mut table = compare_md;
    table.push_str(&markdown(&rows));
    table.push_str(&conv_vs_gemm(&rows));
    let (optimizer_md, optimizer_json) = optimizer_vs_torch(&rows, &torch, threads);
    table.push_str(&optimizer_md);
    let (gpt_md, gpt_json) = gpt_vs_torch(&rows, &gpt_torch);
    table.push_str(&gpt_md);
    table.push_str(&loss_share(&rows, threads));
    table.push_str(&data_vs_training(&rows, threads));
    let json_rows: Vec<Value> = rows.iter().map(Row::to_json).collect();
    write(&out.join("report.md"), &table)?;
    let mut report = json!({
        "benchmarks": json_rows,
        "torch": torch,
        "optimizer_vs_torch": optimizer_json,
        "gpt_vs_torch": gpt_json,
    });
    if let Value::Object(fields) = &mut report {
        // Each model's comparison (`seed_cnn`, ...) and PyTorch's lines for it
        // (`torch_seed_cnn`, ...).
        fields.extend(compare_json);
    }
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    write(&out.join("report.json"), &text)?;
    println!("{table}");
    println!("xtask: wrote {}", out.join("report.md").display());
    Ok(())
}

/// Each convolution layer against the `gemm` crate on the products it is made of
/// (forward: one product; backward: the weight gradient, plus the input gradient
/// except for the first layer), so that the cost of im2col, layouts and epilogues
/// shows as a ratio below 100 %.
fn conv_vs_gemm(rows: &[Row]) -> String {
    let median = |id: &str| rows.iter().find(|r| r.id == id).map(|r| r.median_ns);
    let crate_time = |prefix: &str| {
        rows.iter()
            .find(|r| r.id.starts_with(prefix) && r.id.ends_with("/gemm_crate"))
            .map(|r| r.median_ns)
    };
    let mut s = String::from(
        "\n| layer | kiln layer | gemm crate, same products | ratio |\n|---|---|---|---|\n",
    );
    let mut any = false;
    for conv in ["conv1", "conv2", "conv3"] {
        let fwd = (
            median(&format!("{conv}/forward")),
            crate_time(&format!("gemm/{conv}_fwd_")),
        );
        let igrad = if conv == "conv1" {
            Some(0.0)
        } else {
            crate_time(&format!("gemm/{conv}_igrad_"))
        };
        let bwd_crate = crate_time(&format!("gemm/{conv}_wgrad_"))
            .zip(igrad)
            .map(|(w, i)| w + i);
        let bwd = (median(&format!("{conv}/backward")), bwd_crate);
        for (pass, (kiln, peer)) in [("forward", fwd), ("backward", bwd)] {
            if let (Some(kiln), Some(peer)) = (kiln, peer) {
                any = true;
                let _ = writeln!(
                    s,
                    "| {conv} {pass} | {:.3} ms | {:.3} ms | {:.0} % |",
                    kiln / 1e6,
                    peer / 1e6,
                    100.0 * peer / kiln
                );
            }
        }
    }
    if any { s } else { String::new() }
}

fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| benchmark | median | min .. max (95% CI of the median) | throughput |\n|---|---|---|---|\n",
    );
    for r in rows {
        let throughput = match r.per_second(r.median_ns) {
            _ if r.bytes.is_some() => {
                format!("{:.1} GB/s", r.bytes.unwrap_or(0.0) / r.median_ns)
            }
            Some(v) if r.id.starts_with("peak") => format!("{:.1} GFLOP/s", v / 1e9),
            Some(v) if compare::model_of(&r.id).is_some() || r.id.starts_with("data_") => {
                let unit = compare::model_of(&r.id).map_or("images", |m| m.unit);
                format!("{v:.0} {unit}/s")
            }
            Some(v) if r.id.starts_with("loss") => format!("{v:.0} samples/s"),
            Some(v) if r.id.starts_with("gpt_") => format!("{v:.0} tokens/s"),
            Some(v) => format!("{:.1} GFLOP/s", v / 1e9),
            None => "-".to_string(),
        };
        let _ = writeln!(
            s,
            "| {} | {:.3} ms | {:.3} .. {:.3} ms | {throughput} |",
            r.id,
            r.median_ns / 1e6,
            r.low_ns / 1e6,
            r.high_ns / 1e6
        );
    }
    s
}

/// The GPT training step (`benches/benches/gpt.rs`) and PyTorch's same step
/// (`benches/python/gpt_torch.py`), alternating thread count by thread count so that
/// drift on a shared machine hits both; PyTorch's lines (none without PyTorch).
fn gpt_rounds(root: &Path, options: &Options, wanted: bool) -> Result<Vec<Value>, String> {
    if !wanted {
        return Ok(Vec::new());
    }
    let with_torch = peer::torch_available();
    let mut torch = Vec::new();
    for threads in options.threads().map_or(vec![1, 2], |t| vec![t]) {
        let group = format!("gpt_batch{GPT_BATCH}_threads{threads}/");
        cargo_bench(root, "gpt", options, Some(&group))?;
        if with_torch {
            let mut args = vec![
                "--batch".to_string(),
                GPT_BATCH.to_string(),
                "--threads".to_string(),
                threads.to_string(),
            ];
            if options.quick {
                args.extend(["--iters", "3", "--rounds", "3"].map(String::from));
            }
            torch.extend(peer::run(root, "benches/python/gpt_torch.py", &args)?);
        }
    }
    Ok(torch)
}

/// The batch of nanoGPT's CPU configuration, which the GPT benchmark measures.
const GPT_BATCH: usize = 12;

/// The GPT training step's tokens per second against PyTorch's, by thread count.
fn gpt_vs_torch(rows: &[Row], torch: &[Value]) -> (String, Value) {
    let mut s = String::from(
        "\n| GPT training step (char_gpt, batch 12 x 64 tokens) | kiln tokens/s | PyTorch tokens/s | ratio |\n|---|---|---|---|\n",
    );
    let mut json = serde_json::Map::new();
    for threads in [1, 2] {
        let id = format!("gpt_batch{GPT_BATCH}_threads{threads}/train_step");
        let Some(kiln) = rows
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.per_second(r.median_ns))
        else {
            continue;
        };
        let peer = torch
            .iter()
            .find(|l| l["threads"] == threads)
            .and_then(|l| l["tokens_per_s_median"].as_f64());
        let (peer_text, ratio_text) = match peer {
            Some(p) => (format!("{p:.0}"), format!("{:.2}x", kiln / p)),
            None => ("-".to_string(), "-".to_string()),
        };
        let _ = writeln!(
            s,
            "| {threads} thread(s) | {kiln:.0} | {peer_text} | {ratio_text} |"
        );
        json.insert(
            format!("threads{threads}"),
            json!({
                "kiln_tokens_per_s": kiln,
                "torch_tokens_per_s": peer,
                "ratio": peer.map(|p| kiln / p),
            }),
        );
    }
    if json.is_empty() {
        return (String::new(), Value::Null);
    }
    s.push_str("\nThe target: kiln at 2.0x PyTorch's tokens/s or more on 2 threads.\n");
    (s, Value::Object(json))
}

/// Adam over one million parameters: kiln against a copy of the same memory (the
/// bandwidth ceiling) and against PyTorch's Adam, measured in the same run.
fn optimizer_vs_torch(rows: &[Row], torch: &[Value], threads: usize) -> (String, Value) {
    let group = format!("optimizer_1m_threads{threads}");
    let find = |name: &str| rows.iter().find(|r| r.id == format!("{group}/{name}"));
    let (Some(adam), Some(copy)) = (find("adam"), find("copy")) else {
        return (String::new(), Value::Null);
    };
    let gbs = |r: &Row| r.bytes.unwrap_or(0.0) / r.median_ns;
    let (kiln, ceiling) = (gbs(adam), gbs(copy));
    let mut s = format!(
        "\n| Adam, 1M parameters, {threads} threads | GB/s | kiln / this |\n|---|---|---|\n\
         | kiln | {kiln:.1} | |\n| kiln's copy of the same memory | {ceiling:.1} | {:.0} % |\n",
        100.0 * kiln / ceiling
    );
    let mut json = json!({ "kiln_gb_per_s": kiln, "copy_gb_per_s": ceiling });
    for line in torch {
        let (Some(name), Some(bytes), Some(seconds)) = (
            line["workload"].as_str(),
            line["bytes"].as_f64(),
            line["seconds_median"].as_f64(),
        ) else {
            continue;
        };
        let peer = bytes / seconds / 1e9;
        let _ = writeln!(
            s,
            "| PyTorch {} `{name}` | {peer:.1} | {:.2}x |",
            line["torch"].as_str().unwrap_or("?"),
            kiln / peer
        );
        json[format!("torch_{name}_gb_per_s")] = json!(peer);
        json[format!("ratio_vs_torch_{name}")] = json!(kiln / peer);
    }
    (s, json)
}

/// The seed loss's share of a whole seed training step.
fn loss_share(rows: &[Row], threads: usize) -> String {
    let find = |id: &str| rows.iter().find(|r| r.id == id).map(|r| r.median_ns);
    let step = find(&format!("seed_cnn_batch64_threads{threads}/train_step"));
    let loss = find("loss_batch64/sparse_categorical_crossentropy");
    match (step, loss) {
        (Some(step), Some(loss)) => format!(
            "\nThe seed loss (sparse categorical cross-entropy, 64 x 10, fused gradient) takes \
             {:.1} us, {:.3} % of a whole seed training step ({:.2} ms).\n",
            loss / 1e3,
            100.0 * loss / step,
            step / 1e6
        ),
        _ => String::new(),
    }
}

/// The batcher's delivery rate against the seed CNN's training rate: data must never
/// bound training.
fn data_vs_training(rows: &[Row], threads: usize) -> String {
    let rate = |r: &Row| r.per_second(r.median_ns).unwrap_or(0.0);
    let batcher = rows
        .iter()
        .find(|r| r.id.starts_with("data_cifar10") && r.id.contains("/batches64"));
    let step = rows
        .iter()
        .find(|r| r.id == format!("seed_cnn_batch64_threads{threads}/train_step"));
    let load = rows.iter().find(|r| r.id.starts_with("data_cifar10_load/"));
    let mut s = String::new();
    if let (Some(b), Some(t)) = (batcher, step) {
        s.push_str(&format!(
            "\nThe batcher delivers {:.0} CIFAR-10 images/s (batches of 64, crop + flip), \
             {:.1}x the seed CNN's training rate ({:.0} images/s).\n",
            rate(b),
            rate(b) / rate(t),
            rate(t)
        ));
    }
    if let Some(l) = load {
        s.push_str(&format!(
            "\nLoading CIFAR-10 (train and test) from the gzipped files takes {:.2} s.\n",
            l.median_ns / 1e9
        ));
    }
    s
}
