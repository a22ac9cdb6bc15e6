//! Support code for kiln's examples: the data set that ships with them and one
//! training step. The data loaders and the training loop of kiln proper will replace
//! both; until then they keep the examples self-contained.

pub mod digits;
pub mod step;
