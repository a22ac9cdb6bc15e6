//! kiln's ONNX exports run in onnxruntime (Python) and give kiln's outputs within
//! 1e-5: the seed CNN, a residual network with batch normalisation and a
//! concatenation, the 1-D kinds over a sequence, and every layer kind alone, in
//! both layouts; each file passes onnx's full checker. Needs a Python with onnx and
//! onnxruntime (`KILN_PYTHON`, else `python3`); says that it skipped otherwise. The
//! script is `tests/oracle/run_onnxruntime.py`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::kernels::rng::Rng;
use kiln::onnx::{Error, ExportOnnx, Layout, OnnxOptions};
use kiln::prelude::*;

const BATCH: usize = 3;

kiln::model! {
    /// The seed's CNN.
    pub struct SeedCnn {
        input: [32, 32, 3],
        conv1: Conv2d(32, 3, relu),
        pool1: MaxPool2d(2),
        conv2: Conv2d(64, 3, relu),
        pool2: MaxPool2d(2),
        conv3: Conv2d(128, 3, relu),
        pool3: MaxPool2d(2),
        flat: Flatten,
        fc1: Dense(128, relu),
        out: Dense(10, softmax),
    }
}

kiln::model! {
    /// A residual network with batch normalisation, a projection shortcut and a
    /// concatenation.
    pub struct ResNet {
        input: [16, 16, 3],
        stem: Conv2d(16, 3, padding = same),
        bn: BatchNorm(relu),
        res1: Residual(activation = relu) {
            a: Conv2d(16, 3, padding = same),
            a_bn: BatchNorm(relu),
            b: Conv2d(16, 3, padding = same),
            b_bn: BatchNorm,
        },
        res2: Residual(activation = relu) {
            a: Conv2d(32, 3, stride = 2, padding = same, activation = relu),
            b: Conv2d(32, 3, padding = same),
            shortcut: Sequential { proj: Conv2d(32, 1, stride = 2), proj_bn: BatchNorm },
        },
        mix: Concat {
            wide: Conv2d(8, 3, padding = same, activation = gelu),
            narrow: Sequential { squeeze: Conv2d(4, 1), conv: Conv2d(8, 3, padding = same) },
            skip: Identity,
        },
        pool: AvgPool2d(2),
        gap: GlobalAvgPool2d,
        drop: Dropout(0.3),
        out: Dense(10, softmax),
    }
}

kiln::model! { pub struct DenseAlone { input: [6], d: Dense(5, tanh) } }
kiln::model! { pub struct ConvSame { input: [7, 7, 3], c: Conv2d(4, 3, stride = 2, padding = same, activation = leaky_relu) } }
kiln::model! { pub struct ConvValid { input: [7, 6, 2], c: Conv2d(filters = 3, kernel = (3, 2), stride = (2, 1), activation = sigmoid) } }
kiln::model! { pub struct BatchNormImage { input: [5, 5, 3], bn: BatchNorm(convention = pytorch) } }
kiln::model! { pub struct BatchNormVector { input: [7], bn: BatchNorm(relu, scale = false) } }
kiln::model! { pub struct BatchNormSequence { input: [4, 6], bn: BatchNorm(center = false) } }
kiln::model! { pub struct MaxPoolSame { input: [7, 7, 2], p: MaxPool2d(3, stride = 2, padding = same) } }
kiln::model! { pub struct MaxPoolValid { input: [7, 7, 2], p: MaxPool2d(2) } }
kiln::model! { pub struct AvgPoolSame { input: [7, 5, 2], p: AvgPool2d(3, stride = 2, padding = same) } }
kiln::model! { pub struct AvgPoolValid { input: [6, 6, 2], p: AvgPool2d(size = 2, stride = 1) } }
kiln::model! { pub struct GlobalAvgPool { input: [5, 4, 3], g: GlobalAvgPool2d } }
kiln::model! {
    /// The 1-D kinds: a causal dilated convolution, a strided `same` one, max
    /// pooling with `same` padding, and both global poolings over time.
    pub struct Sequence1d {
        input: [17, 3],
        causal: Conv1d(4, 3, relu, dilation = 2, padding = causal),
        strided: Conv1d(5, 4, stride = 2, padding = same, activation = tanh),
        pool: MaxPool1d(3, stride = 2, padding = same),
        both: Concat { avg: GlobalAvgPool1d, max: GlobalMaxPool1d },
        out: Dense(2, softmax),
    }
}
kiln::model! { pub struct Conv1dValid { input: [9, 2], c: Conv1d(3, 2, stride = 3, dilation = 2) } }
kiln::model! { pub struct MaxPool1dValid { input: [9, 2], p: MaxPool1d(2) } }
kiln::model! { pub struct FlattenImage { input: [3, 4, 2], f: Flatten } }
kiln::model! { pub struct IdentityAlone { input: [3, 3, 2], i: Identity } }
kiln::model! { pub struct DropoutAlone { input: [9], d: Dropout(0.5) } }
kiln::model! { pub struct ReluAlone { input: [9], a: Relu } }
kiln::model! { pub struct LeakyReluAlone { input: [3, 3, 2], a: LeakyRelu(0.1) } }
kiln::model! { pub struct SigmoidAlone { input: [9], a: Sigmoid } }
kiln::model! { pub struct TanhAlone { input: [2, 5], a: Tanh } }
kiln::model! { pub struct GeluAlone { input: [9], a: Gelu } }
kiln::model! { pub struct SoftmaxImage { input: [3, 3, 4], conv: Conv2d(5, 1), a: Softmax } }
kiln::model! { pub struct SoftmaxVector { input: [9], a: Softmax } }
kiln::model! {
    pub struct TokenLstm {
        input: tokens[6] of 9,
        embed: Embedding(9, 4),
        lstm: Lstm(5, return_sequences = true),
        out: TimeDense(9, softmax),
    }
}
kiln::model! { pub struct LstmLastStep { input: [6, 3], lstm: Lstm(5), out: Dense(2) } }
kiln::model! { pub struct GruSequences { input: [6, 3], gru: Gru(5, return_sequences = true) } }
kiln::model! { pub struct GruResetBefore { input: [6, 3], gru: Gru(5, reset_after = false) } }
kiln::model! { pub struct SimpleRnnLastStep { input: [6, 3], rnn: SimpleRnn(4), out: Dense(2) } }
kiln::model! {
    pub struct ResidualAlone {
        input: [4, 4, 3],
        r: Residual(activation = tanh) { a: Conv2d(3, 3, padding = same) },
    }
}
kiln::model! {
    pub struct ConcatAlone {
        input: [4, 4, 3],
        c: Concat { a: Conv2d(2, 1), b: Identity, d: MaxPool2d(3, stride = 1, padding = same) },
    }
}
kiln::model! {
    pub struct SequentialAlone {
        input: [4, 4, 3],
        s: Sequential { a: Conv2d(2, 1, relu), b: Conv2d(2, 3, padding = same) },
    }
}
kiln::model! {
    /// Vectors of flattened images joined and normalised: the `c, h, w` order that
    /// a Flatten leaves must be undone before the concatenation, carried through the
    /// normalisation, and folded into the dense layer.
    pub struct FlattenedBranches {
        input: [4, 4, 3],
        conv: Conv2d(2, 1),
        flat: Flatten,
        bn: BatchNorm,
        both: Concat { a: Identity, b: Dense(3) },
        out: Dense(4),
    }
}

/// A Python that has onnx and onnxruntime: `KILN_PYTHON`, else `python3`.
fn python_with_onnxruntime() -> Result<String, String> {
    let python = std::env::var("KILN_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&python)
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(format!(
            "{python} lacks onnx or onnxruntime ({}); set KILN_PYTHON to a Python that has both",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => Err(format!("cannot run {python}: {e}")),
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-onnx-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

/// Biases, normalisations' scales and shifts and their running statistics set to
/// random values (variances positive), so that no layer is the identity by its
/// initialisation; kernels keep theirs (Glorot's), which keeps outputs away from a
/// saturated softmax.
fn randomise<M: Model<Cpu>>(model: &mut M, seed: u64) {
    let cpu = model.backend().clone();
    let mut rng = Rng::new(seed);
    model
        .visit_parameters(&mut |p| {
            if p.name == "weight" && p.kind != "BatchNorm" {
                return Ok(());
            }
            let v: Vec<f32> = (0..p.shape.size())
                .map(|_| rng.uniform_in(-0.5, 0.5))
                .collect();
            cpu.upload(&v, p.value)
        })
        .unwrap();
    model
        .visit_state(&mut |s| {
            let positive = s.name.contains("var");
            let v: Vec<f32> = (0..s.shape.size())
                .map(|_| {
                    if positive {
                        rng.uniform_in(0.2, 2.0)
                    } else {
                        rng.uniform_in(-0.5, 0.5)
                    }
                })
                .collect();
            cpu.upload(&v, s.value)
        })
        .unwrap();
}

/// Exports `M` (random weights) in `layout` into `dir` with a random batch and kiln's
/// outputs for it, and returns the manifest entry.
fn case<M: Model<Cpu>>(dir: &Path, layout: Layout) -> serde_json::Value {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut model = M::new(&cpu, BATCH, 1).unwrap();
    randomise(&mut model, 7);
    let mut rng = Rng::new(11);
    let x: Vec<f32> = (0..BATCH * M::INPUT_SHAPE.size())
        .map(|_| match M::INPUT_SHAPE.vocabulary() {
            // Token ids, as exact floats.
            Some(v) => (rng.uniform() * v as f32).floor().min(v as f32 - 1.0),
            None => rng.uniform_in(-2.0, 2.0),
        })
        .collect();
    let y = model
        .forward_host(&x, Mode::Eval)
        .unwrap()
        .to_vec(&cpu)
        .unwrap();
    let name = format!("{}-{layout:?}", M::NAME);
    let onnx = dir.join(format!("{name}.onnx"));
    model
        .export_onnx_with(&onnx, &OnnxOptions::new().layout(layout))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    write_f32(&dir.join(format!("{name}.x")), &x);
    write_f32(&dir.join(format!("{name}.y")), &y);
    serde_json::json!({
        "name": name,
        "model": onnx,
        "input": dir.join(format!("{name}.x")),
        "expected": dir.join(format!("{name}.y")),
        "input_shape": M::INPUT_SHAPE.dims(),
        "batch": BATCH,
        "layout": format!("{layout:?}").to_uppercase(),
    })
}

#[test]
fn every_layer_kind_and_block_runs_in_onnxruntime_as_in_kiln() {
    let python = match python_with_onnxruntime() {
        Ok(python) => python,
        Err(why) => {
            writeln!(std::io::stderr(), "skipped: onnxruntime check: {why}").unwrap();
            return;
        }
    };
    let dir = scratch("onnxruntime");
    let mut cases = Vec::new();
    for layout in [Layout::Nhwc, Layout::Nchw] {
        cases.extend([
            case::<SeedCnn>(&dir, layout),
            case::<ResNet>(&dir, layout),
            case::<ConvSame>(&dir, layout),
            case::<ConvValid>(&dir, layout),
            case::<BatchNormImage>(&dir, layout),
            case::<MaxPoolSame>(&dir, layout),
            case::<AvgPoolSame>(&dir, layout),
            case::<GlobalAvgPool>(&dir, layout),
            case::<FlattenImage>(&dir, layout),
            case::<IdentityAlone>(&dir, layout),
            case::<LeakyReluAlone>(&dir, layout),
            case::<SoftmaxImage>(&dir, layout),
            case::<ResidualAlone>(&dir, layout),
            case::<ConcatAlone>(&dir, layout),
            case::<SequentialAlone>(&dir, layout),
            case::<FlattenedBranches>(&dir, layout),
        ]);
    }
    cases.extend([
        case::<DenseAlone>(&dir, Layout::Nhwc),
        case::<BatchNormVector>(&dir, Layout::Nhwc),
        case::<BatchNormSequence>(&dir, Layout::Nhwc),
        case::<MaxPoolValid>(&dir, Layout::Nhwc),
        case::<Sequence1d>(&dir, Layout::Nhwc),
        case::<Conv1dValid>(&dir, Layout::Nhwc),
        case::<MaxPool1dValid>(&dir, Layout::Nhwc),
        case::<AvgPoolValid>(&dir, Layout::Nhwc),
        case::<DropoutAlone>(&dir, Layout::Nhwc),
        case::<ReluAlone>(&dir, Layout::Nhwc),
        case::<SigmoidAlone>(&dir, Layout::Nhwc),
        case::<TanhAlone>(&dir, Layout::Nhwc),
        case::<GeluAlone>(&dir, Layout::Nhwc),
        case::<SoftmaxVector>(&dir, Layout::Nhwc),
        case::<TokenLstm>(&dir, Layout::Nhwc),
        case::<LstmLastStep>(&dir, Layout::Nhwc),
        case::<GruSequences>(&dir, Layout::Nhwc),
        case::<GruResetBefore>(&dir, Layout::Nhwc),
        case::<SimpleRnnLastStep>(&dir, Layout::Nhwc),
    ]);
    let manifest = dir.join("manifest.json");
    std::fs::write(&manifest, serde_json::to_vec(&cases).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/run_onnxruntime.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut worst = 0.0f64;
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let r = &results[name];
        let diff = r["max_abs_diff"].as_f64().unwrap();
        println!(
            "{name:<28} max |onnxruntime - kiln| = {diff:.2e} (outputs in [{:.3}, {:.3}]), {} nodes: {}",
            r["min"], r["max"], r["nodes"], r["ops"]
        );
        assert_eq!(r["opset"], 17, "{name}");
        assert!(
            diff <= 1e-5,
            "{name}: onnxruntime differs from kiln by {diff}"
        );
        worst = worst.max(diff);
    }
    println!("{} models, largest difference {worst:.2e}", cases.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_seed_cnn_in_nchw_folds_the_flatten_into_the_dense_weights() {
    let cpu = Cpu::with_threads(1).unwrap();
    let model = SeedCnn::new(&cpu, 1, 3).unwrap();
    let onnx = model
        .onnx_model(&OnnxOptions::new().layout(Layout::Nchw))
        .unwrap();
    let graph = onnx.graph.unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    // No transpose at all: the input is NCHW, and fc1 takes the flattened image's
    // order in its rows.
    assert!(!ops.contains(&"Transpose"), "{ops:?}");
    let names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv1",
            "conv1/relu",
            "pool1",
            "conv2",
            "conv2/relu",
            "pool2",
            "conv3",
            "conv3/relu",
            "pool3",
            "flat",
            "fc1",
            "fc1/relu",
            "out",
            "out/softmax"
        ]
    );
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(initializers.len(), 10);
    assert!(initializers.contains(&"fc1.weight"), "{initializers:?}");
    // NHWC adds one transpose, at the input.
    let nhwc = model
        .onnx_model(&OnnxOptions::new())
        .unwrap()
        .graph
        .unwrap();
    let transposes = nhwc
        .node
        .iter()
        .filter(|n| n.op_type == "Transpose")
        .count();
    assert_eq!(transposes, 1);
}

#[test]
fn a_path_in_a_missing_folder_is_an_error_that_names_it() {
    let cpu = Cpu::with_threads(1).unwrap();
    let model = DenseAlone::new(&cpu, 1, 3).unwrap();
    let dir = scratch("missing");
    let path = dir.join("no/such/folder/model.onnx");
    let err = model.export_onnx(&path).unwrap_err();
    assert!(matches!(err, Error::MissingFolder { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("no/such/folder") && message.contains("does not exist"),
        "{message}"
    );
    // Nothing is left behind, and a good path works.
    assert!(!dir.join("no").exists());
    model.export_onnx(dir.join("model.onnx")).unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["model.onnx"]);
    let _ = std::fs::remove_dir_all(&dir);
}
