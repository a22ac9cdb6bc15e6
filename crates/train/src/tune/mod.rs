//! Tuning: the learning-rate range test ([`Trainer::lr_find`](crate::Trainer::lr_find))
//! and the batch-size finder ([`batch_size`]).

pub mod batch_size;
mod lr_find;
#[cfg(feature = "plots")]
mod plot;

pub use lr_find::{LrFind, LrFindOptions, Suggestion, minimum, steep, valley};
