//! What the checkpoint targets share: a small model with an optimizer and a moving
//! average, the tensors and metadata of a real checkpoint of it, a safetensors
//! writer that writes whatever header it is given, and every way to load a file.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use kiln::prelude::*;
use kiln::train::checkpoint::{self, CheckpointExtra, LoadOptions};
use kiln::train::{EpochLog, History};

kiln::model! {
    /// Two dense layers and a batch normalisation: weights and saved state.
    pub struct Net {
        input: [3],
        hidden: Dense(4, relu),
        norm: BatchNorm,
        out: Dense(2),
    }
}

/// A tensor as a header entry describes it, with its bytes.
#[derive(Clone)]
pub struct Tensor {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    /// `None`: the offsets of the bytes as written.
    pub offsets: Option<(u64, u64)>,
    pub bytes: Vec<u8>,
}

/// A checkpoint's parts, to change and write back.
#[derive(Clone)]
pub struct File {
    pub metadata: Vec<(String, String)>,
    pub tensors: Vec<Tensor>,
    /// Bytes after the tensors' data.
    pub trailer: Vec<u8>,
}

fn cpu() -> Cpu {
    Cpu::with_threads(1).expect("a backend")
}

fn optimizer() -> Optimizer<Cpu> {
    Optimizer::new(Adam::default())
}

/// The parts of a checkpoint saved after one training step, with the optimizer's
/// state, a history and a moving average.
pub fn template() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| {
        let cpu = cpu();
        let mut model = Net::new(&cpu, 4, 1).expect("a model");
        let mut optimizer = optimizer();
        let mut ema = Ema::new(0.9);
        let loss = Loss::sparse_categorical_crossentropy().from_logits(true);
        let mut criterion = model.criterion(loss).expect("a criterion");
        let x: Vec<f32> = (0..12).map(|i| (i as f32).sin()).collect();
        let output = model.forward_host(&x, Mode::Train).expect("a forward pass");
        criterion
            .compute(&output, Targets::Classes(&[0, 1, 1, 0]), None)
            .expect("a loss");
        model.zero_grad().expect("zeroed gradients");
        model
            .backward(criterion.gradient(), criterion.grad_at())
            .expect("a backward pass");
        optimizer.step(&mut model).expect("a step");
        ema.update(&model).expect("an average");
        let history = History {
            epochs: vec![EpochLog {
                epoch: 0,
                values: vec![("loss".into(), 0.5), ("val_loss".into(), f64::NAN)],
                learning_rate: 1e-3,
                seconds: 0.25,
            }],
        };
        let extra = CheckpointExtra {
            optimizer: Some(&optimizer),
            epoch: Some(0),
            history: Some(&history),
        };
        let path = scratch_path("template");
        checkpoint::save_with_ema(&path, &model, &extra, &ema).expect("a checkpoint");
        let bytes = std::fs::read(&path).expect("the checkpoint");
        let _ = std::fs::remove_file(&path);
        split(&bytes)
    })
}

/// A file's parts, read from the bytes of a valid checkpoint.
fn split(bytes: &[u8]) -> File {
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + len]).expect("a JSON header");
    let data = &bytes[8 + len..];
    let (mut metadata, mut tensors) = (Vec::new(), Vec::new());
    for (name, entry) in header.as_object().expect("an object") {
        if name == "__metadata__" {
            for (k, v) in entry.as_object().expect("metadata") {
                metadata.push((k.clone(), v.as_str().expect("a string").to_string()));
            }
            continue;
        }
        let number = |v: &serde_json::Value| v.as_u64().expect("a number");
        let offsets: Vec<u64> = entry["data_offsets"].as_array().expect("offsets").iter().map(number).collect();
        tensors.push(Tensor {
            name: name.clone(),
            dtype: entry["dtype"].as_str().expect("a dtype").to_string(),
            shape: entry["shape"].as_array().expect("a shape").iter().map(number).collect(),
            offsets: None,
            bytes: data[offsets[0] as usize..offsets[1] as usize].to_vec(),
        });
    }
    File {
        metadata,
        tensors,
        trailer: Vec::new(),
    }
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl File {
    /// The file's bytes: the header as described, whether or not it is consistent.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut entries = Vec::new();
        if !self.metadata.is_empty() {
            let pairs: Vec<String> = self
                .metadata
                .iter()
                .map(|(k, v)| format!("{}:{}", json_string(k), json_string(v)))
                .collect();
            entries.push(format!("\"__metadata__\":{{{}}}", pairs.join(",")));
        }
        let mut data = Vec::new();
        for t in &self.tensors {
            let start = data.len() as u64;
            data.extend_from_slice(&t.bytes);
            let (start, end) = t.offsets.unwrap_or((start, data.len() as u64));
            let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
            entries.push(format!(
                "{}:{{\"dtype\":{},\"shape\":[{}],\"data_offsets\":[{start},{end}]}}",
                json_string(&t.name),
                json_string(&t.dtype),
                shape.join(",")
            ));
        }
        let header = format!("{{{}}}", entries.join(","));
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&data);
        bytes.extend_from_slice(&self.trailer);
        bytes
    }
}

/// A file name of this process's own.
fn scratch_path(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kiln-fuzz-{what}-{}.safetensors", std::process::id()))
}

/// Loads `bytes` every way kiln does; none may panic, and a model that loaded with
/// the default options holds only finite weights.
pub fn load_every_way(bytes: &[u8]) {
    let path = scratch_path("input");
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    let cpu = cpu();
    let _ = checkpoint::read_info(&path);
    let mut model = Net::new(&cpu, 4, 2).expect("a model");
    if checkpoint::load_weights(&path, &mut model).is_ok() {
        let weights = kiln::train::Weights::of(&model).expect("the weights");
        for (name, _, values) in weights.iter() {
            assert!(values.iter().all(|v| v.is_finite()), "{name} loaded non-finite values");
        }
    }
    let mut optimizer = optimizer();
    let _ = checkpoint::load(&path, &mut model, Some(&mut optimizer));
    let mut ema = Ema::new(0.9);
    let _ = checkpoint::load_with_ema(&path, &mut model, Some(&mut optimizer), &mut ema);
    let options = LoadOptions::default().allow_non_finite(true);
    let _ = checkpoint::load_with_options(&path, &mut model, None, None, options);
    let _ = std::fs::remove_file(&path);
}

/// Draws values from the fuzzer's bytes, then zeros.
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }

    pub fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, _| (acc << 8) | u64::from(self.byte()))
    }

    /// A number that is small, near a power of two, or anything.
    pub fn size(&mut self) -> u64 {
        match self.byte() % 4 {
            0 | 1 => u64::from(self.byte() % 16),
            2 => (1u64 << (self.byte() % 64)).wrapping_add(u64::from(self.byte()) % 3).wrapping_sub(1),
            _ => self.u64(),
        }
    }

    /// Up to `max` bytes.
    pub fn take(&mut self, max: usize) -> &[u8] {
        let n = usize::from(self.byte()).min(max).min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    pub fn text(&mut self, max: usize) -> String {
        String::from_utf8_lossy(self.take(max)).into_owned()
    }
}
