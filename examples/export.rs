//! Trains the quickstart's digit CNN while TensorBoard watches, then exports it for
//! deployment: an ONNX file (for onnxruntime, TensorRT, browsers, Netron) and a
//! safetensors file of its weights (for kiln or PyTorch), and prints how to run the
//! ONNX file with onnxruntime.
//!
//! ```text
//! cargo run --release --example export -- [--epochs N] [--batch-size N] [--seed N] [--data DIR]
//! ```
//!
//! Everything goes to `target/kiln-examples/export/`: `digits.onnx`,
//! `digits.safetensors`, `digits.npy` (eight test digits, as the model takes them) and
//! the TensorBoard logs under `logs/` (`tensorboard --logdir
//! target/kiln-examples/export/logs`). Where a Python with onnxruntime is found
//! (`KILN_PYTHON`, else `python3`), the example runs the printed snippet itself and
//! checks that onnxruntime's classes for the eight digits are kiln's.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use kiln::data::mnist;
use kiln::prelude::*;
use kiln::train::CheckpointExtra;
use kiln_examples::args::{Args, Device};
use kiln_examples::digits::DigitCnn;
use kiln_examples::report::{Json, peak_memory_mib};

/// Test digits written for the onnxruntime snippet.
const SHOWN: usize = 8;

fn main() -> std::process::ExitCode {
    kiln_examples::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse_cpu_only(Args {
        epochs: 2,
        batch_size: 64,
        seed: 1,
        data: None,
        device: Device::Cpu,
    })?;
    let (train, test) = match &args.data {
        Some(dir) => mnist::IdxSet::mnist().load_dir(dir)?,
        None => mnist::embedded()?,
    };
    let (train, test) = (Arc::new(train), Arc::new(test));
    let out = kiln_examples::report::output_dir().join("export");
    std::fs::create_dir_all(&out)?;

    let model = DigitCnn::new(&Cpu::new()?, args.batch_size, args.seed)?;
    let mut trainer = Trainer::new(
        model,
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()),
    )?
    .metrics([Metric::Accuracy]);
    let pipeline = Pipeline::new().scale(1.0 / 255.0);
    let logs = out.join("logs");
    let started = Instant::now();
    let history = trainer.fit(
        train,
        FitOptions::new(args.epochs, args.batch_size)
            .seed(args.seed)
            .pipeline(pipeline.clone())
            .validation_data(Arc::clone(&test))
            .callback(TensorBoard::new(&logs).batch_scalars(true)),
    )?;
    let train_seconds = started.elapsed().as_secs_f64();
    let evaluation = trainer.evaluate(Arc::clone(&test), args.batch_size, &pipeline)?;
    println!("TensorBoard: tensorboard --logdir {}", logs.display());

    // The files.
    let model = trainer.model();
    let onnx = out.join("digits.onnx");
    model.export_onnx(&onnx)?;
    let weights = out.join("digits.safetensors");
    kiln::train::checkpoint::save(&weights, model, &CheckpointExtra::default())?;
    println!(
        "ONNX model:   {} ({} bytes)",
        onnx.display(),
        file_len(&onnx)
    );
    println!(
        "safetensors:  {} ({} bytes)",
        weights.display(),
        file_len(&weights)
    );

    // Eight test digits as the model takes them (NHWC, scaled to [0, 1]), and kiln's
    // classes for them.
    let shown = test.select(&(0..SHOWN).collect::<Vec<_>>())?;
    let inputs = scaled_pixels(&shown)?;
    let probabilities = trainer.predict(shown, SHOWN, &pipeline)?;
    let kiln_classes: Vec<usize> = probabilities.chunks(10).map(argmax).collect();
    let npy = out.join("digits.npy");
    write_npy(&npy, &inputs, &[SHOWN, 28, 28, 1])?;

    let snippet = format!(
        "import numpy as np, onnxruntime as ort\n\
         session = ort.InferenceSession(\"{}\")\n\
         x = np.load(\"{}\")  # [batch, 28, 28, 1] float32, pixels / 255\n\
         probabilities = session.run([\"output\"], {{\"input\": x}})[0]\n\
         print(probabilities.argmax(axis=1).tolist())",
        onnx.display(),
        npy.display()
    );
    println!("\nRun it with onnxruntime (pip install onnxruntime numpy):\n");
    println!("python3 - <<'EOF'\n{snippet}\nEOF\n");
    println!("kiln's classes for these digits: {kiln_classes:?}");
    let onnxruntime = match run_snippet(&snippet) {
        Some(classes) => {
            println!("onnxruntime's:                   {classes:?}");
            if classes != kiln_classes {
                return Err("onnxruntime's classes differ from kiln's".into());
            }
            "agrees"
        }
        None => {
            println!("(no Python with onnxruntime found: set KILN_PYTHON to run it here)");
            "not run"
        }
    };

    let mut result = Json::new()
        .number(
            "test_accuracy",
            evaluation.get("accuracy").unwrap_or(f64::NAN),
            4,
        )
        .number("test_loss", evaluation.get("loss").unwrap_or(f64::NAN), 4)
        .number("train_seconds", train_seconds, 2)
        .number("epochs", history.epochs.len() as f64, 0)
        .number("onnx_bytes", file_len(&onnx) as f64, 0)
        .number("safetensors_bytes", file_len(&weights) as f64, 0)
        .text("onnxruntime", onnxruntime);
    if let Some(mib) = peak_memory_mib() {
        result = result.number("peak_memory_mib", mib, 0);
    }
    println!("result: {result}");
    Ok(())
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &p)| {
            if p > best.1 { (i, p) } else { best }
        })
        .0
}

/// The digits' pixels as the model takes them: bytes / 255.
fn scaled_pixels(data: &kiln::data::InMemory) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    let mut pixels = Vec::new();
    for i in 0..data.len() {
        match data.get(i)?.input {
            kiln::data::Input::U8(v) => pixels.extend(v.iter().map(|&b| f32::from(b) / 255.0)),
            kiln::data::Input::F32(v) => pixels.extend(v.iter()),
        }
    }
    Ok(pixels)
}

/// A `.npy` file (format 1.0) of little-endian float32 values.
fn write_npy(path: &Path, values: &[f32], shape: &[usize]) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    // Magic, version and length take 10 bytes; the header ends in a newline at a
    // multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&u16::try_from(header.len()).unwrap_or(0).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes)
}

/// onnxruntime's classes from the snippet, where a Python with it is found.
fn run_snippet(snippet: &str) -> Option<Vec<usize>> {
    let python = std::env::var("KILN_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python).args(["-c", snippet]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_list(&String::from_utf8_lossy(&out.stdout))
}

/// `[7, 2, 1]` as numbers.
fn parse_list(text: &str) -> Option<Vec<usize>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    inner.split(',').map(|n| n.trim().parse().ok()).collect()
}
