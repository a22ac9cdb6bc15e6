//! The training loop of kiln: Keras's `compile` / `fit` / `evaluate` / `predict` on a
//! model that `model!` generated, with metrics, callbacks, progress, checkpoints and
//! plots.
//!
//! ```
//! use kiln::prelude::*;
//!
//! kiln::model! {
//!     pub struct Tiny {
//!         input: [28, 28, 1],
//!         conv: Conv2d(filters = 4, kernel = 3, stride = 2, activation = relu),
//!         flat: Flatten,
//!         out: Dense(10, softmax),
//!     }
//! }
//!
//! let (train, test) = kiln::data::mnist::embedded()?;
//! let train = train.select(&(0..512).collect::<Vec<_>>())?;
//! let model = Tiny::new(&Cpu::new()?, 32, 7)?;
//! let mut trainer = Trainer::new(model, Loss::sparse_categorical_crossentropy(), Optimizer::new(Adam::default()))?
//!     .metrics([Metric::Accuracy]);
//! let scale = Pipeline::new().scale(1.0 / 255.0);
//! let history = trainer.fit(
//!     train,
//!     FitOptions::new(2, 32)
//!         .pipeline(scale.clone())
//!         .callback(EarlyStopping::new("loss").patience(3))
//!         .verbose(Verbosity::Silent),
//! )?;
//! assert_eq!(history.names(), ["loss", "accuracy"]);
//! let evaluation = trainer.evaluate(test, 32, &scale)?;
//! assert!(evaluation.get("accuracy").unwrap_or(0.0) > 0.3, "{evaluation:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod callbacks;
pub mod checkpoint;
mod distributed;
mod error;
mod evaluate;
mod history;
pub mod metrics;
#[cfg(feature = "plots")]
pub mod plot;
mod progress;
mod trainer;
pub mod tune;

pub use callbacks::{
    Callback, Context, CsvLogger, EarlyStopping, LearningRateScheduler, ModelCheckpoint,
    MonitorMode, ReduceLrOnPlateau, TensorBoard,
};
pub use checkpoint::{CheckpointExtra, CheckpointInfo, Weights};
pub use error::{Error, Result};
pub use evaluate::{EvaluateOptions, Tta};
pub use history::{EpochLog, History};
pub use metrics::{ConfusionMatrix, Metric};
#[cfg(feature = "plots")]
pub use plot::{plot_history, plot_runs};
pub use progress::Verbosity;
pub use trainer::{Evaluation, FitOptions, SharedData, Trainer, Validation};
pub use tune::{LrFind, LrFindOptions, Suggestion};
