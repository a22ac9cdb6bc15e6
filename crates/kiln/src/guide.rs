//! The guide: one chapter per task, each example compiled and run as a doctest. The
//! same pages are the markdown files under `docs/` in the repository.

#[doc = include_str!("../../../docs/guide/data.md")]
pub mod data {}

#[doc = include_str!("../../../docs/guide/models.md")]
pub mod models {}

#[doc = include_str!("../../../docs/guide/training.md")]
pub mod training {}

#[doc = include_str!("../../../docs/guide/files.md")]
pub mod files {}

#[doc = include_str!("../../../docs/GPU.md")]
pub mod gpu {}

#[doc = include_str!("../../../docs/DISTRIBUTED.md")]
pub mod distributed {}

#[doc = include_str!("../../../docs/BENCHMARKS.md")]
pub mod benchmarks {}
