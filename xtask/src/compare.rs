//! The benchmark models against PyTorch: for each model, workload, batch and thread
//! count, kiln's and PyTorch's images (or tokens) per second from the same invocation, their
//! ratio, and kiln's share of the machine's FMA peak.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::results::Row;

/// A model of `benches/benches/models.rs`, which `benches/python/cpu_torch.py` runs in
/// PyTorch.
pub struct BenchModel {
    /// The name that starts its benchmark groups (`{name}_batch{b}_threads{t}`) and
    /// that `cpu_torch.py --model` takes.
    pub name: &'static str,
    /// The name in the report.
    pub title: &'static str,
    /// FLOPs of one sample's training step (forward, input gradients except the first
    /// layer's, weight gradients): three times the forward's multiply-adds, less the
    /// first layer's input gradient, times two.
    pub train_flops: f64,
    /// FLOPs of one sample's forward pass, counting convolutions as direct ones.
    pub forward_flops: f64,
    /// The batch sizes its benchmark groups measure.
    pub batches: &'static [usize],
    /// What its throughput counts: `images` or `tokens`.
    pub unit: &'static str,
    /// The PyTorch script that runs it (`--model name --batch b --threads t`).
    pub peer: &'static str,
}

/// The PyTorch peer of the image models.
const IMAGE_PEER: &str = "benches/python/cpu_torch.py";
/// The PyTorch peer of the language model.
const LSTM_PEER: &str = "benches/python/lstm_torch.py";

/// The models, in the report's order.
pub const MODELS: &[BenchModel] = &[
    // Multiply-adds: conv1 777,600, conv2 3,115,008, conv3 1,179,648, the dense
    // layers 66,816.
    BenchModel {
        name: "seed_cnn",
        title: "seed CNN",
        train_flops: 29.28e6,
        forward_flops: 10.28e6,
        batches: &[64, 256],
        unit: "images",
        peer: IMAGE_PEER,
    },
    // Multiply-adds: the stem 884,736, res1's two convolutions 9,437,184 each, res2's
    // 4,718,592 (stride 2) and 9,437,184, its shortcut 524,288, the dense layer 640.
    BenchModel {
        name: "small_resnet",
        title: "small ResNet",
        train_flops: 204.87e6,
        forward_flops: 68.88e6,
        batches: &[64, 256],
        unit: "images",
        peer: IMAGE_PEER,
    },
    // Multiply-adds: prep 442,368, conv1 4,718,592, res1's two 2,359,296 each,
    // conv2 and conv3 4,718,592 each, res3's two 2,359,296 each, the dense layer
    // 1,280 (batch normalisation and pooling not counted).
    BenchModel {
        name: "resnet9",
        title: "ResNet-9 (batch norm)",
        train_flops: 143.33e6,
        forward_flops: 48.07e6,
        batches: &[64, 512],
        unit: "images",
        peer: IMAGE_PEER,
    },
    // A token's multiply-adds: the LSTM's input product 64 x 1,024 = 65,536, its
    // recurrent one 256 x 1,024 = 262,144, the output layer 256 x 65 = 16,640.
    BenchModel {
        name: "char_lstm",
        title: "character LSTM language model, 64 steps",
        train_flops: 2.066e6,
        forward_flops: 0.689e6,
        batches: &[64],
        unit: "tokens",
        peer: LSTM_PEER,
    },
    BenchModel {
        name: "char_lstm_generate",
        title: "character LSTM generating",
        train_flops: 2.066e6,
        forward_flops: 0.689e6,
        batches: &[1],
        unit: "tokens",
        peer: LSTM_PEER,
    },
];

/// The keys' stem of a peer's rates: `tokens_per_s` where it counts tokens, else
/// `images_per_s`.
fn rate_key(line: &Value) -> &'static str {
    if line.get("tokens_per_s_median").is_some() {
        "tokens_per_s"
    } else {
        "images_per_s"
    }
}

/// A peer line's rate: `stat` is `median`, `min` or `max`.
fn peer_rate(line: &Value, stat: &str) -> Option<f64> {
    line[format!("{}_{stat}", rate_key(line))].as_f64()
}

/// The model whose benchmark `id` is, if any.
pub fn model_of(id: &str) -> Option<&'static BenchModel> {
    MODELS.iter().find(|m| {
        id.strip_prefix(m.name)
            .is_some_and(|rest| rest.starts_with("_batch"))
    })
}

/// The (batch, threads) configurations measured of `model`: its batches, on 1 and 2
/// threads, or on `threads` only.
pub fn configs(model: &BenchModel, threads: Option<usize>) -> Vec<(usize, usize)> {
    let counts = threads.map_or(vec![1, 2], |t| vec![t]);
    model
        .batches
        .iter()
        .flat_map(|&b| counts.iter().map(move |&t| (b, t)))
        .collect()
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// One row per benchmark from several rounds: the median of the rounds' medians, and
/// the fastest and slowest of them as the range.
pub fn combine_rounds(rounds: &[Row]) -> Vec<Row> {
    let mut ids: Vec<&str> = rounds.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let same: Vec<&Row> = rounds.iter().filter(|r| r.id == id).collect();
            let mut medians: Vec<f64> = same.iter().map(|r| r.median_ns).collect();
            let low = medians.iter().copied().fold(f64::INFINITY, f64::min);
            let high = medians.iter().copied().fold(0.0, f64::max);
            Row {
                id: id.to_string(),
                median_ns: median(&mut medians),
                low_ns: low,
                high_ns: high,
                elements: same[0].elements,
                bytes: same[0].bytes,
            }
        })
        .collect()
}

/// PyTorch's lines for the same workload and configuration from several rounds
/// combined the same way: the median of the medians, the range of the medians.
pub fn combine_torch_rounds(lines: &[Value]) -> Vec<Value> {
    let key = |l: &Value| {
        (
            l["model"].to_string(),
            l["workload"].to_string(),
            l["batch"].to_string(),
            l["threads"].to_string(),
        )
    };
    let mut keys: Vec<(String, String, String, String)> = lines.iter().map(key).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let same: Vec<&Value> = lines.iter().filter(|l| key(l) == k).collect();
            let mut medians: Vec<f64> =
                same.iter().filter_map(|l| peer_rate(l, "median")).collect();
            let first = same.first()?;
            let (low, high) = (
                medians.iter().copied().fold(f64::INFINITY, f64::min),
                medians.iter().copied().fold(0.0, f64::max),
            );
            let mut line = (*first).clone();
            let stem = rate_key(first);
            line[format!("{stem}_median")] = json!(median(&mut medians));
            line[format!("{stem}_min")] = json!(low);
            line[format!("{stem}_max")] = json!(high);
            line["rounds"] = json!(same.len());
            Some(line)
        })
        .collect()
}

/// The FMA peak on `threads` threads, measured in this run, in FLOP/s: AVX2's (what
/// kiln's kernels use) with `kind` "fma", AVX-512's with "fma512".
fn peak(rows: &[Row], kind: &str, threads: usize) -> Option<f64> {
    rows.iter()
        .find(|r| r.id == format!("peak/{kind}_threads{threads}"))
        .and_then(|r| r.per_second(r.median_ns))
}

/// The markdown tables of every model measured in this run, with the FMA peaks they
/// are shares of, and their JSON by model name (kiln's rows, `torch_{name}` PyTorch's
/// lines).
pub fn models(rows: &[Row], torch: &[Value]) -> (String, serde_json::Map<String, Value>) {
    let mut md = String::new();
    let mut out = serde_json::Map::new();
    let mut footnotes = Vec::new();
    for model in MODELS {
        let peer: Vec<Value> = torch
            .iter()
            .filter(|l| l["model"] == model.name)
            .cloned()
            .collect();
        let (table, json) = model_table(model, rows, &peer);
        if json.is_null() {
            continue;
        }
        md.push_str(&table);
        out.insert(model.name.to_string(), json);
        out.insert(format!("torch_{}", model.name), Value::Array(peer));
        footnotes.push(format!(
            "the {}'s {:.1} MFLOP per sample for a training step, {:.1} for inference",
            model.title,
            model.train_flops / 1e6,
            model.forward_flops / 1e6
        ));
    }
    if out.is_empty() {
        return (md, out);
    }
    for threads in [1, 2] {
        if let Some(p) = peak(rows, "fma", threads) {
            let _ = write!(
                md,
                "\nFMA peak, {threads} thread(s): {:.1} GFLOP/s with AVX2 (kiln's kernels)",
                p / 1e9
            );
            match peak(rows, "fma512", threads) {
                Some(wide) => {
                    let _ = writeln!(md, ", {:.1} with AVX-512.", wide / 1e9);
                }
                None => md.push_str(".\n"),
            }
        }
    }
    let _ = write!(
        md,
        "\nThe share of the peak counts a direct convolution's FLOPs ({}); layers that use \
         Winograd's transform do fewer multiply-adds, so for them it is an effective \
         figure.\n\n",
        footnotes.join("; ")
    );
    (md, out)
}

/// The markdown table and its JSON for every row of `model` in this run, against
/// PyTorch's lines for it.
fn model_table(model: &BenchModel, rows: &[Row], torch: &[Value]) -> (String, Value) {
    let mut md = format!(
        "| {} | kiln {unit}/s (range over rounds) | PyTorch {unit}/s (range over rounds) | kiln / PyTorch | kiln's share of the AVX2 FMA peak |\n|---|---|---|---|---|\n",
        model.title,
        unit = model.unit,
    );
    let mut out = Vec::new();
    let prefix = format!("{}_batch", model.name);
    // Batch, then threads, then workload: the table reads as a grid.
    let mut model_rows: Vec<&Row> = rows.iter().filter(|r| r.id.starts_with(&prefix)).collect();
    let key = |r: &Row| {
        let digits = |s: &str| {
            s.chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
                .parse::<usize>()
                .unwrap_or(0)
        };
        let (group, workload) = r.id.split_once('/').unwrap_or((r.id.as_str(), ""));
        let (batch, threads) = group.split_once("_threads").unwrap_or((group, "0"));
        (digits(batch), digits(threads), workload.to_string())
    };
    model_rows.sort_by_key(|r| key(r));
    for row in model_rows {
        let Some((group, workload)) = row.id.split_once('/') else {
            continue;
        };
        let numbers: Vec<usize> = group
            .trim_start_matches(&prefix)
            .split("_threads")
            .filter_map(|n| n.parse().ok())
            .collect();
        let [batch, threads] = numbers[..] else {
            continue;
        };
        let rate = |ns: f64| row.per_second(ns).unwrap_or(f64::NAN);
        let (kiln, kiln_min, kiln_max) = (rate(row.median_ns), rate(row.high_ns), rate(row.low_ns));
        let peer = torch.iter().find(|l| {
            l["workload"] == workload
                && l["batch"] == json!(batch)
                && l["threads"] == json!(threads)
        });
        let torch_rate = peer.and_then(|l| peer_rate(l, "median"));
        let flops = if workload == "inference" {
            model.forward_flops
        } else {
            model.train_flops
        };
        let share = peak(rows, "fma", threads).map(|p| kiln * flops / p);
        let _ = writeln!(
            md,
            "| {workload}, batch {batch}, {threads} thread{} | {kiln:.0} ({kiln_min:.0} .. {kiln_max:.0}) | {} | {} | {} |",
            if threads == 1 { "" } else { "s" },
            peer.map_or("-".to_string(), |l| format!(
                "{:.0} ({:.0} .. {:.0})",
                peer_rate(l, "median").unwrap_or(f64::NAN),
                peer_rate(l, "min").unwrap_or(f64::NAN),
                peer_rate(l, "max").unwrap_or(f64::NAN)
            )),
            torch_rate.map_or("-".to_string(), |t| format!("{:.2}x", kiln / t)),
            share.map_or("-".to_string(), |s| format!("{:.0} %", 100.0 * s)),
        );
        out.push(json!({
            "workload": workload,
            "unit": model.unit,
            "batch": batch,
            "threads": threads,
            "kiln_images_per_s": kiln,
            "kiln_images_per_s_min": kiln_min,
            "kiln_images_per_s_max": kiln_max,
            "torch_images_per_s": torch_rate,
            "ratio": torch_rate.map(|t| kiln / t),
            "kiln_share_of_fma_peak": share,
        }));
    }
    if out.is_empty() {
        return (String::new(), Value::Null);
    }
    md.push('\n');
    (md, Value::Array(out))
}
