//! Every layer kind `model!` knows, one file each: its spec, its description and its
//! shape rule. Adding a kind is a file here and a line in [`KINDS`].

pub mod activation;
pub mod attention;
pub mod batch_norm;
pub mod conv1d;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod embedding;
pub mod flatten;
pub mod global_pool2d;
pub mod layer_norm;
pub mod pool1d;
pub mod pool2d;
pub mod position_embedding;
pub mod recurrent;
pub mod time_dense;

use crate::kind::LayerKind;
use crate::{Shape, ShapeError};

/// Every layer kind, in the order documentation and error messages list them.
pub static KINDS: &[&LayerKind] = &[
    &dense::DENSE,
    &conv2d::CONV2D,
    &batch_norm::BATCH_NORM,
    &pool2d::MAX_POOL2D,
    &pool2d::AVG_POOL2D,
    &global_pool2d::GLOBAL_AVG_POOL2D,
    &conv1d::CONV1D,
    &pool1d::MAX_POOL1D,
    &pool1d::GLOBAL_AVG_POOL1D,
    &pool1d::GLOBAL_MAX_POOL1D,
    &flatten::FLATTEN,
    &flatten::IDENTITY,
    &dropout::DROPOUT,
    &activation::RELU,
    &activation::LEAKY_RELU,
    &activation::SIGMOID,
    &activation::TANH,
    &activation::GELU,
    &activation::SOFTMAX,
    &embedding::EMBEDDING,
    &recurrent::LSTM,
    &time_dense::TIME_DENSE,
    &layer_norm::LAYER_NORM,
    &attention::MULTI_HEAD_ATTENTION,
    &position_embedding::POSITION_EMBEDDING,
    &recurrent::GRU,
    &recurrent::SIMPLE_RNN,
];

/// The kind named `name`, exactly.
pub fn kind(name: &str) -> Option<&'static LayerKind> {
    KINDS.iter().copied().find(|k| k.name == name)
}

/// The rule of layers that keep their input's shape (activations, dropout).
pub(crate) fn elementwise(input: &Shape) -> Result<Shape, ShapeError> {
    if input.rank() == 0 {
        return Err(ShapeError::new("an input of rank 1 or more", *input));
    }
    Ok(*input)
}
