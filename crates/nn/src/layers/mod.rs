//! One file per layer kind.

pub mod activation;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod flatten;
mod params;
pub mod pool2d;
