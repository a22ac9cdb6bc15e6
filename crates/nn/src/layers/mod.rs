//! One file per layer kind (the kind's description and shape rule are in
//! `kiln-shape`'s `kinds/`).

pub mod activation;
pub mod attention;
pub mod batch_norm;
pub mod conv1d;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod embedding;
pub mod flatten;
pub mod layer_norm;
mod params;
pub mod pool1d;
pub mod pool2d;
pub mod position_embedding;
pub mod recurrent;
pub mod time_dense;
