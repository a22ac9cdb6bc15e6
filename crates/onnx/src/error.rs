//! The errors of ONNX export.

use std::path::PathBuf;

/// What went wrong exporting a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A layer whose kind the exporter does not know.
    #[error(
        "layer `{layer}` ({kind}) cannot be exported to ONNX yet: kiln has no ONNX form for {kind}"
    )]
    Unsupported {
        /// The layer's name in the model.
        layer: String,
        /// Its kind.
        kind: String,
    },
    /// A tensor the graph needs is not among the model's parameters and state.
    #[error("layer `{layer}` needs the tensor `{key}`, which the model does not have")]
    MissingTensor {
        /// The layer.
        layer: String,
        /// `layer.name`.
        key: String,
    },
    /// The model's graph does not hold together (a bug of the model's description).
    #[error("the model's graph is malformed at `{node}`")]
    Graph {
        /// The node where it went wrong.
        node: String,
    },
    /// The folder of the output file does not exist.
    #[error("cannot write the ONNX file {}: its folder {} does not exist; create it first", path.display(), folder.display())]
    MissingFolder {
        /// The file asked for.
        path: PathBuf,
        /// Its folder.
        folder: PathBuf,
    },
    /// Writing the file failed.
    #[error("cannot write the ONNX file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reading the weights from the backend failed.
    #[error(transparent)]
    Backend(#[from] kiln_kernels::Error),
}

/// `Result` of ONNX export.
pub type Result<T> = std::result::Result<T, Error>;
