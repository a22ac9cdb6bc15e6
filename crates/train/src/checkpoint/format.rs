//! The checkpoint file: safetensors, with kiln's metadata.
//!
//! - Weights are `F32` tensors named `<layer>.<tensor>` (`conv1.weight`) with the
//!   model's shapes (Keras's layouts: a convolution kernel is `[kh, kw, c_in, c_out]`,
//!   a dense kernel `[in, units]`).
//! - Optimizer state tensors are `F32` tensors named `optimizer.<key>`
//!   (`optimizer.conv1.weight.exp_avg`), shaped as their parameter.
//! - The averages of an exponential moving average of the weights are `F32` tensors
//!   named `ema.<key>` (`ema.conv1.weight`, `ema.bn1.running_mean`), shaped as their
//!   tensor.
//! - The metadata (string to string, as safetensors has it) holds `format` = `kiln`,
//!   `kiln_version`, `model` (the struct's name), and when saved: `epoch` (a decimal
//!   integer), `history`, `optimizer` and `ema` (JSON, described at
//!   [`history_json`], [`optimizer_json`] and [`ema_json`]), and `preprocessing`
//!   (a fitted table pipeline as `kiln_data::FittedPipeline::to_json` writes it).
//!
//! A file without `format` = `kiln` (one that PyTorch wrote) is read for its
//! weights alone.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use kiln_optim::{EmaState, OptimizerState};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};
use serde_json::{Map, Value, json};

use super::CheckpointInfo;
use super::weights::{Entry, Foreign, Weights};
use crate::{EpochLog, History};

/// The value of the `format` metadata key in kiln's checkpoints.
const FORMAT: &str = "kiln";
/// The prefix of optimizer state tensors.
const OPTIMIZER_PREFIX: &str = "optimizer.";
/// The prefix of the moving average's tensors.
const EMA_PREFIX: &str = "ema.";
/// The metadata key of a fitted table pipeline.
pub(crate) const PREPROCESSING: &str = "preprocessing";

/// What a checkpoint holds, borrowed for writing.
pub(crate) struct Contents<'a> {
    pub(crate) model: &'a str,
    pub(crate) weights: &'a Weights,
    pub(crate) epoch: Option<usize>,
    pub(crate) history: Option<&'a History>,
    pub(crate) optimizer: Option<&'a OptimizerState>,
    pub(crate) ema: Option<&'a EmaState>,
    /// A fitted table pipeline's JSON.
    pub(crate) preprocessing: Option<&'a str>,
}

/// A checkpoint read back.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// Every `F32` tensor that is neither optimizer state nor an average.
    pub(crate) weights: Weights,
    /// Tensors of other element types.
    pub(crate) foreign: Vec<Foreign>,
    /// The metadata.
    pub(crate) info: CheckpointInfo,
}

/// `F32` values as a safetensors tensor, converted to little-endian bytes one tensor
/// at a time while the file is serialised.
struct F32View<'a> {
    shape: Vec<usize>,
    values: &'a [f32],
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn data_len(&self) -> usize {
        size_of_val(self.values)
    }
}

/// The bytes of the checkpoint file; the error says why safetensors refused it.
pub(crate) fn encode(contents: &Contents<'_>) -> Result<Vec<u8>, String> {
    let entries = contents.weights.entries();
    let shapes: HashMap<&str, &[usize]> = entries
        .iter()
        .map(|e| (e.key.as_str(), e.shape.as_slice()))
        .collect();
    let mut tensors: Vec<(String, F32View<'_>)> = entries
        .iter()
        .map(|e| {
            let view = F32View {
                shape: e.shape.clone(),
                values: &e.values,
            };
            (e.key.clone(), view)
        })
        .collect();
    let mut metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        (
            "kiln_version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("model".to_string(), contents.model.to_string()),
    ]);
    if let Some(epoch) = contents.epoch {
        metadata.insert("epoch".into(), epoch.to_string());
    }
    if let Some(history) = contents.history {
        metadata.insert("history".into(), history_json(history).to_string());
    }
    if let Some(preprocessing) = contents.preprocessing {
        metadata.insert(PREPROCESSING.into(), preprocessing.to_string());
    }
    if let Some(state) = contents.optimizer {
        metadata.insert("optimizer".into(), optimizer_json(state).to_string());
        for (key, values) in &state.tensors {
            // `conv1.weight.exp_avg` has the shape of `conv1.weight`.
            let shape = key
                .rsplit_once('.')
                .and_then(|(param, _)| shapes.get(param))
                .filter(|dims| dims.iter().product::<usize>() == values.len())
                .map_or_else(|| vec![values.len()], |dims| dims.to_vec());
            tensors.push((
                format!("{OPTIMIZER_PREFIX}{key}"),
                F32View { shape, values },
            ));
        }
    }
    if let Some(state) = contents.ema {
        metadata.insert("ema".into(), ema_json(state).to_string());
        for (key, values) in &state.tensors {
            let shape = shapes
                .get(key.as_str())
                .filter(|dims| dims.iter().product::<usize>() == values.len())
                .map_or_else(|| vec![values.len()], |dims| dims.to_vec());
            tensors.push((format!("{EMA_PREFIX}{key}"), F32View { shape, values }));
        }
    }
    safetensors::serialize(tensors, Some(metadata))
        .map_err(|e| format!("safetensors cannot encode the checkpoint: {e}"))
}

/// Reads a checkpoint file's bytes; the error says what is wrong with them.
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    let (header_len, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| describe(&e, bytes))?;
    let data = bytes
        .get(size_of::<u64>() + header_len..)
        .ok_or("the header runs past the end of the file")?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut info = CheckpointInfo::default();
    let mut state_keys = Vec::new();
    let mut ema_keys = Vec::new();
    if metadata.get("format").is_some_and(|f| f == FORMAT) {
        info.model = metadata.get("model").cloned();
        info.kiln_version = metadata.get("kiln_version").cloned();
        if let Some(epoch) = metadata.get("epoch") {
            info.epoch = Some(epoch.parse().map_err(|_| {
                format!("the metadata's epoch is `{epoch}`, not a non-negative integer")
            })?);
        }
        if let Some(history) = metadata.get("history") {
            info.history = Some(
                parse_history(history)
                    .map_err(|e| format!("the metadata's history is not kiln's: {e}"))?,
            );
        }
        if let Some(optimizer) = metadata.get("optimizer") {
            let (state, keys) = parse_optimizer(optimizer)
                .map_err(|e| format!("the metadata's optimizer is not kiln's: {e}"))?;
            info.optimizer = Some(state);
            state_keys = keys;
        }
        if let Some(ema) = metadata.get("ema") {
            let (state, keys) =
                parse_ema(ema).map_err(|e| format!("the metadata's ema is not kiln's: {e}"))?;
            info.ema = Some(state);
            ema_keys = keys;
        }
    }
    info.metadata = metadata;

    let mut state: HashMap<String, Vec<f32>> = HashMap::new();
    let mut entries = Vec::new();
    let mut foreign = Vec::new();
    let is_state: HashSet<String> = state_keys
        .iter()
        .map(|k| format!("{OPTIMIZER_PREFIX}{k}"))
        .chain(ema_keys.iter().map(|k| format!("{EMA_PREFIX}{k}")))
        .collect();
    for name in header.offset_keys() {
        let Some(tensor) = header.info(&name) else {
            continue;
        };
        let (start, end) = tensor.data_offsets;
        let raw = data
            .get(start..end)
            .ok_or_else(|| format!("{name}'s data lies outside the file"))?;
        if tensor.dtype != Dtype::F32 {
            if is_state.contains(&name) {
                return Err(format!("{name} is {:?}, not F32", tensor.dtype));
            }
            foreign.push(Foreign {
                key: name,
                shape: tensor.shape.clone(),
                dtype: format!("{:?}", tensor.dtype),
            });
            continue;
        }
        let values: Vec<f32> = raw
            .as_chunks::<4>()
            .0
            .iter()
            .map(|b| f32::from_le_bytes(*b))
            .collect();
        if values.len() != tensor.shape.iter().product::<usize>() {
            return Err(format!(
                "{name} has shape {:?} but {} bytes of data",
                tensor.shape,
                raw.len()
            ));
        }
        if is_state.contains(&name) {
            state.insert(name, values);
        } else {
            entries.push(Entry {
                key: name,
                shape: tensor.shape.clone(),
                values,
            });
        }
    }
    if let Some(optimizer) = &mut info.optimizer {
        for key in state_keys {
            let name = format!("{OPTIMIZER_PREFIX}{key}");
            let values = state.remove(&name).ok_or_else(|| {
                format!("the optimizer's metadata lists {key}, but the file has no tensor {name}")
            })?;
            optimizer.tensors.push((key, values));
        }
    }
    if let Some(ema) = &mut info.ema {
        for key in ema_keys {
            let name = format!("{EMA_PREFIX}{key}");
            let values = state.remove(&name).ok_or_else(|| {
                format!("the ema's metadata lists {key}, but the file has no tensor {name}")
            })?;
            ema.tensors.push((key, values));
        }
    }
    Ok(Decoded {
        weights: Weights::from_entries(entries),
        foreign,
        info,
    })
}

/// What is wrong with a file that safetensors refused, in words a user can act on.
fn describe(error: &SafeTensorError, bytes: &[u8]) -> String {
    let len = bytes.len();
    let claimed = bytes
        .first_chunk::<8>()
        .map_or(0, |b| u64::from_le_bytes(*b));
    match error {
        SafeTensorError::HeaderTooSmall => format!(
            "not a safetensors file: it holds {len} bytes, fewer than the 8 that give the \
             header's length"
        ),
        SafeTensorError::HeaderTooLarge if claimed.saturating_add(8) <= len as u64 => format!(
            "not a kiln checkpoint: its header of {claimed} bytes is larger than safetensors \
             allows"
        ),
        SafeTensorError::HeaderTooLarge | SafeTensorError::InvalidHeaderLength => format!(
            "truncated, or not a safetensors file: its first 8 bytes announce a header of \
             {claimed} bytes, but the file holds {len}"
        ),
        SafeTensorError::InvalidHeader(_) => {
            "not a safetensors file: its header is not UTF-8 text".to_string()
        }
        SafeTensorError::InvalidHeaderDeserialization(e) => {
            format!("not a safetensors file: its header is not safetensors JSON ({e})")
        }
        SafeTensorError::MetadataIncompleteBuffer => format!(
            "truncated or damaged: the tensor data that the header describes does not \
             match the {} bytes after it",
            len.saturating_sub(8)
                .saturating_sub(claimed.try_into().unwrap_or(usize::MAX))
        ),
        other => format!("not a valid safetensors file: {other}"),
    }
}

/// A JSON number, or for a value JSON cannot write a string Python's `float()`
/// reads back: `"NaN"`, `"Infinity"`, `"-Infinity"`.
fn number(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or_else(
        || {
            let text = if v.is_nan() {
                "NaN"
            } else if v > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            };
            Value::String(text.into())
        },
        Value::Number,
    )
}

/// Reads what [`number`] wrote.
fn parse_number(v: &Value, what: &str) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s == "NaN" => Some(f64::NAN),
        Value::String(s) if s == "Infinity" => Some(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
    .ok_or_else(|| format!("{what} is {v}, not a number"))
}

/// `[[name, value], ...]`: pairs keep their order where a JSON object might not.
fn pairs_json(pairs: &[(String, f64)]) -> Value {
    pairs.iter().map(|(k, v)| json!([k, number(*v)])).collect()
}

/// Reads what [`pairs_json`] wrote.
fn parse_pairs(v: Option<&Value>, what: &str) -> Result<Vec<(String, f64)>, String> {
    let items = v
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{what} is not a list"))?;
    items
        .iter()
        .map(|item| match item.as_array().map(Vec::as_slice) {
            Some([Value::String(k), v]) => {
                Ok((k.clone(), parse_number(v, &format!("{what} {k}"))?))
            }
            _ => Err(format!("{what} holds {item}, not a [name, value] pair")),
        })
        .collect()
}

/// A JSON list of strings; `what` names the list and `item` its entries in the error.
fn strings(v: &Value, what: &str, item: &str) -> Result<Vec<String>, String> {
    v.as_array()
        .ok_or_else(|| format!("its {what} are not a list"))?
        .iter()
        .map(|k| {
            k.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{item} {k} is not a string"))
        })
        .collect()
}

/// The `history` metadata: a list with one object an epoch,
/// `{"epoch": 0, "values": [["loss", 0.52], ["val_loss", 0.61]], "learning_rate": 0.001,
/// "seconds": 12.5}`.
pub(crate) fn history_json(history: &History) -> Value {
    history
        .epochs
        .iter()
        .map(|e| {
            json!({
                "epoch": e.epoch,
                "values": pairs_json(&e.values),
                "learning_rate": number(e.learning_rate),
                "seconds": number(e.seconds),
            })
        })
        .collect()
}

/// Reads what [`history_json`] wrote.
fn parse_history(text: &str) -> Result<History, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let epochs = value.as_array().ok_or("it is not a list")?;
    let epochs = epochs
        .iter()
        .map(|e| {
            let e = e
                .as_object()
                .ok_or_else(|| format!("{e} is not an object"))?;
            let field = |name: &str| e.get(name).ok_or_else(|| format!("an epoch lacks {name}"));
            Ok(EpochLog {
                epoch: field("epoch")?
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or("an epoch number is not a non-negative integer")?,
                values: parse_pairs(e.get("values"), "values")?,
                learning_rate: parse_number(field("learning_rate")?, "learning_rate")?,
                seconds: parse_number(field("seconds")?, "seconds")?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(History { epochs })
}

/// The `optimizer` metadata: `{"algorithm": "adam", "step": 1200, "learning_rate":
/// 0.001 (null under a schedule), "scalars": [["mu_product", 1.0]], "groups":
/// ["group(kinds [BatchNorm], ...)"], "tensors": ["conv1.weight.exp_avg", ...]}`.
/// `groups` describes the parameter groups (absent in files saved before there were
/// any: no groups); `tensors` lists the state tensors in the order the optimizer
/// gave them; each is stored as `optimizer.<name>`.
pub(crate) fn optimizer_json(state: &OptimizerState) -> Value {
    let mut object = Map::new();
    object.insert("algorithm".into(), json!(state.algorithm));
    object.insert("step".into(), json!(state.step));
    object.insert(
        "learning_rate".into(),
        state.learning_rate.map_or(Value::Null, number),
    );
    object.insert("scalars".into(), pairs_json(&state.scalars));
    object.insert("groups".into(), json!(state.groups));
    object.insert(
        "tensors".into(),
        state.tensors.iter().map(|(k, _)| json!(k)).collect(),
    );
    Value::Object(object)
}

/// Reads what [`optimizer_json`] wrote: the state without its tensors, and their
/// names in order.
fn parse_optimizer(text: &str) -> Result<(OptimizerState, Vec<String>), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let object = value.as_object().ok_or("it is not an object")?;
    let algorithm = object
        .get("algorithm")
        .and_then(Value::as_str)
        .ok_or("it names no algorithm")?
        .to_string();
    let step = object
        .get("step")
        .and_then(Value::as_u64)
        .ok_or("its step is not a non-negative integer")?;
    let learning_rate = match object.get("learning_rate") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_number(v, "learning_rate")?),
    };
    let scalars = parse_pairs(object.get("scalars"), "scalars")?;
    let groups = match object.get("groups") {
        None => Vec::new(),
        Some(v) => strings(v, "groups", "group")?,
    };
    let keys = strings(
        object.get("tensors").unwrap_or(&Value::Null),
        "tensors",
        "tensor name",
    )?;
    let state = OptimizerState {
        algorithm,
        step,
        learning_rate,
        scalars,
        groups,
        tensors: Vec::with_capacity(keys.len()),
    };
    Ok((state, keys))
}

/// The `ema` metadata: `{"decay": 0.999, "every": 1, "warmup": null (or the warm-up's
/// power), "steps": 1200, "updates": 1200, "tensors": ["conv1.weight", ...,
/// "bn1.running_var"]}`. `tensors` lists the averages in the model's order; each is
/// stored as `ema.<name>`.
pub(crate) fn ema_json(state: &EmaState) -> Value {
    json!({
        "decay": number(state.decay),
        "every": state.every,
        "warmup": state.warmup.map_or(Value::Null, number),
        "steps": state.steps,
        "updates": state.updates,
        "tensors": state.tensors.iter().map(|(k, _)| json!(k)).collect::<Value>(),
    })
}

/// Reads what [`ema_json`] wrote: the state without its tensors, and their names in
/// order.
fn parse_ema(text: &str) -> Result<(EmaState, Vec<String>), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let object = value.as_object().ok_or("it is not an object")?;
    let count = |name: &str| {
        object
            .get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("its {name} is not a non-negative integer"))
    };
    let decay = parse_number(object.get("decay").unwrap_or(&Value::Null), "decay")?;
    let warmup = match object.get("warmup") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_number(v, "warmup")?),
    };
    let keys = strings(
        object.get("tensors").unwrap_or(&Value::Null),
        "tensors",
        "tensor name",
    )?;
    let state = EmaState {
        decay,
        every: count("every")?,
        warmup,
        steps: count("steps")?,
        updates: count("updates")?,
        tensors: Vec::with_capacity(keys.len()),
    };
    Ok((state, keys))
}
