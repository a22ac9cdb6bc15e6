//! Tuning: the learning-rate range test ([`Trainer::lr_find`](crate::Trainer::lr_find)),
//! the batch-size finder ([`batch_size`]) and hyper-parameter search ([`study`]).

pub mod batch_size;
mod lr_find;
#[cfg(feature = "plots")]
mod plot;
pub mod study;

pub use lr_find::{LrFind, LrFindOptions, Suggestion, minimum, steep, valley};
