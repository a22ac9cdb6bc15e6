//! The data side of kiln: data sets, loaders for real formats, verified downloads
//! into a cache, preprocessing, splits, and a batcher that prepares augmented `f32`
//! batches on background threads ahead of the training step.
//!
//! - [`Dataset`]: a length and sample access; [`InMemory`] holds what the loaders
//!   return (images stay `u8`, height x width x channels), [`Subset`] views some of
//!   its samples, [`cifar::Stream`] reads records from disk on demand.
//! - Loaders, for plain or gzipped files: [`cifar`] (CIFAR-10 binary files and the
//!   official archive), [`mnist`] and [`idx`] (MNIST, Fashion-MNIST), [`csv`]
//!   (numeric tables such as the UCI ones).
//! - [`cifar::load_data`], [`mnist::load_data`]: download the official archives into
//!   the cache folder (`KILN_DATA_DIR`, else the user's cache folder), verify their
//!   checksums and reuse them ([`Cache`]).
//! - [`mnist::embedded`]: 10,000 real MNIST digits inside the crate, for training
//!   offline on a fresh machine.
//! - [`Pipeline`] and [`Stats`]: scaling, per-channel normalisation, feature
//!   standardisation; [`split`]: train / validation / test and k-fold, seeded and
//!   stratified; [`Batcher`]: shuffled, augmented batches in order.
//! - [`audio`]: WAV files, resampling, STFT, log-mel and MFCC features computed on the
//!   batcher's threads, SpecAugment, and the Free Spoken Digit Dataset.
//! - [`Frame`]: real tables, CSV or JSON records, with typed columns (numbers,
//!   categories, text, dates) and missing cells; [`TablePipeline`]: their cleaning
//!   (imputation, encoding, outliers, skew, dates, standardisation) fitted on the
//!   training split and saved as JSON with the model ([`clean`]).
//!
//! The seed recipe's `cifar10.load_data()` then `x / 255.0`, with the embedded
//! digits standing in for CIFAR-10 (which needs a download):
//!
//! ```
//! use kiln_data::{Augment, BatchOptions, Batcher, Pipeline};
//!
//! let (train, test) = kiln_data::mnist::embedded()?; // or kiln_data::cifar::load_data()?
//! assert_eq!((train.len(), test.len()), (8_000, 2_000));
//!
//! let options = BatchOptions::new(64)
//!     .seed(1)
//!     .pipeline(Pipeline::new().scale(1.0 / 255.0))
//!     .augment(Augment::none().crop(2));
//! let mut batcher = Batcher::new(train, options)?;
//! for epoch in 0..2 {
//!     for batch in batcher.epoch(epoch) {
//!         let batch = batch?;
//!         let (x, y) = (batch.inputs(), batch.labels()); // [len, 28, 28, 1] and [len]
//!         assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
//!         assert!(y.iter().all(|&c| c < 10));
//!     }
//! }
//! # Ok::<(), kiln_data::Error>(())
//! ```

pub mod audio;
mod batch;
pub mod cache;
mod checksum;
pub mod cifar;
pub mod clean;
pub mod csv;
mod dataset;
#[cfg(feature = "download")]
mod download;
mod error;
pub mod frame;
pub mod idx;
mod json;
pub mod mnist;
pub mod preprocess;
#[cfg(feature = "download")]
mod progress;
pub mod read;
mod rng;
pub mod split;
mod stats;
pub mod text;

pub use batch::{Augment, Batch, BatchOptions, BatchTargets, Batcher, Epoch};
pub use cache::{Cache, Remote};
pub use checksum::{Checksum, md5_hex, sha256_hex};
pub use clean::{Encoding, FittedPipeline, Impute, Scaling, TablePipeline, Unknown};
pub use dataset::{
    Dataset, Dtype, InMemory, Input, Inputs, Origin, Sample, Subset, Target, TargetKind, Targets,
};
pub use error::{Error, Result};
pub use frame::{Frame, Kind, ReadOptions};
pub use preprocess::{Pipeline, Stats};
