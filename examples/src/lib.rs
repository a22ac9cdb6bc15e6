//! Support code for kiln's examples: the data set that ships with them and a plain
//! gradient-descent step. The data loaders and optimizers of kiln proper will replace
//! both; until then they keep the examples self-contained.

pub mod digits;
pub mod sgd;
