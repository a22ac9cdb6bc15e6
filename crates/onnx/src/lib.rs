//! ONNX export of kiln models: `model.export_onnx(path)` writes the network that
//! `model!` declared as an ONNX file (opset 17) that onnxruntime, TensorRT, browsers
//! or Netron read.
//!
//! The exporter walks the model's dataflow graph (the `GRAPH` constant the macro
//! emits: every layer, residual sum and concatenation with the values it reads), so
//! blocks export as the graph they run. Weights are initialisers named as in
//! checkpoints (`conv1.weight`, `res2.shortcut.bias`), nodes are named after the
//! declaration (`conv1`, and `conv1/relu` for its activation), and the batch
//! dimension is symbolic (`batch`). The input and output are `input` and `output`.
//!
//! Images are NHWC at the model's interface by default, as kiln takes them;
//! [`Layout::Nchw`] makes them NCHW, as PyTorch's exports are. Inside, convolutions
//! and pooling run on NCHW (all ONNX has); the kernels are turned as they are
//! written, and the order in which a `Flatten` leaves an NCHW image's values is
//! folded into the rows of the `Dense` layer after it, so no transpose runs there.
//!
//! ```
//! use kiln::prelude::*;
//! use kiln::onnx::{ExportOnnx, Layout, OnnxOptions};
//!
//! kiln::model! {
//!     pub struct Tiny {
//!         input: [8, 8, 1],
//!         conv: Conv2d(4, 3, relu),
//!         pool: MaxPool2d(2),
//!         flat: Flatten,
//!         out: Dense(10, softmax),
//!     }
//! }
//!
//! let model = Tiny::new(&Cpu::new()?, 1, 42)?;
//! let path = std::env::temp_dir().join("kiln-doc-tiny.onnx");
//! model.export_onnx(&path)?;
//! let nchw = model.to_onnx(&OnnxOptions::new().layout(Layout::Nchw))?;
//! assert!(nchw.len() > 4 * <Tiny>::PARAMETERS);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
mod error;
mod export;
mod lower;
pub mod proto;

use std::path::{Path, PathBuf};

use kiln_kernels::{Backend, Trainable};
use kiln_nn::Model;
use prost::Message;

pub use error::{Error, Result};
use export::Tensors;

/// The opset of the operators kiln writes.
pub const OPSET: i64 = 17;
/// The ONNX IR version that opset 17 goes with.
pub const IR_VERSION: i64 = 8;

/// Where an exported model's images keep their channels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// `[batch, height, width, channels]`, kiln's (and Keras's) order.
    #[default]
    Nhwc,
    /// `[batch, channels, height, width]`, PyTorch's.
    Nchw,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Nhwc => "NHWC",
            Layout::Nchw => "NCHW",
        }
    }
}

/// How to export.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnnxOptions {
    /// The layout of image inputs and outputs.
    pub layout: Layout,
}

impl OnnxOptions {
    /// NHWC images.
    pub fn new() -> Self {
        Self::default()
    }

    /// The layout of image inputs and outputs.
    #[must_use]
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }
}

/// ONNX export, for every model that `model!` generates.
pub trait ExportOnnx<B: Backend> {
    /// The model as an ONNX `ModelProto`.
    fn onnx_model(&self, options: &OnnxOptions) -> Result<proto::ModelProto>;

    /// The model as the bytes of an ONNX file.
    fn to_onnx(&self, options: &OnnxOptions) -> Result<Vec<u8>> {
        Ok(self.onnx_model(options)?.encode_to_vec())
    }

    /// Writes the model to `path` with NHWC images (kiln's layout).
    fn export_onnx(&self, path: impl AsRef<Path>) -> Result<()> {
        self.export_onnx_with(path, &OnnxOptions::default())
    }

    /// Writes the model to `path` under `options`. The file is written beside it
    /// and renamed into place, so a failed write leaves no partial file; a missing
    /// folder is an error that names it.
    fn export_onnx_with(&self, path: impl AsRef<Path>, options: &OnnxOptions) -> Result<()> {
        let bytes = self.to_onnx(options)?;
        write_atomically(path.as_ref(), &bytes)
    }
}

impl<B: Backend, M: Model<B>> ExportOnnx<B> for M {
    fn onnx_model(&self, options: &OnnxOptions) -> Result<proto::ModelProto> {
        let tensors = host_tensors(self)?;
        let graph =
            export::graph_proto(M::NAME, M::INPUT_SHAPE, M::GRAPH, &tensors, options.layout)?;
        Ok(proto::ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![proto::OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "kiln".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: kiln_nn::summary(M::NAME, M::INPUT_SHAPE, M::LAYERS),
            graph: Some(graph),
            metadata_props: vec![proto::StringStringEntryProto {
                key: "layout".into(),
                value: options.layout.name().into(),
            }],
        })
    }
}

/// Every parameter and saved state tensor of `model`, on the host, by key.
fn host_tensors<B: Backend, M: Trainable<B>>(model: &M) -> Result<Tensors> {
    let backend = model.backend();
    let mut tensors = Tensors::new();
    model.parameters(&mut |p| {
        let values = backend.to_host(p.value, p.shape.size())?;
        tensors.insert(p.key(), (p.shape.dims().to_vec(), values));
        Ok(())
    })?;
    model.state(&mut |s| {
        let values = backend.to_host(s.value, s.shape.size())?;
        tensors.insert(s.key(), (s.shape.dims().to_vec(), values));
        Ok(())
    })?;
    Ok(tensors)
}

/// Writes `bytes` to a file beside `path`, syncs it and renames it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !folder.is_dir() {
        return Err(Error::MissingFolder {
            path: path.to_path_buf(),
            folder,
        });
    }
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let written = (|| {
        use std::io::Write;
        let mut file = std::fs::File::create(&partial)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&partial, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(io(e));
    }
    Ok(())
}
