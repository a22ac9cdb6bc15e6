//! The optimizers of kiln: SGD (momentum, Nesterov), Adam (AMSGrad), AdamW, RMSprop
//! (momentum, centered), Adagrad, Nadam and Lion; coupled and decoupled weight decay;
//! clipping by value, by norm and by global norm; parameter groups with a weight
//! decay and a learning-rate scale of their own; learning-rate schedules; and an
//! exponential moving average of the weights ([`Ema`]).
//!
//! Each update is one fused pass of the backend's optimizer kernel over a
//! parameter, its gradient and its state, with the arithmetic in the order of
//! `torch.optim`, so trajectories match PyTorch's. Defaults are Keras's where Keras
//! has the optimizer; `pytorch()` constructors give PyTorch's.
//!
//! ```
//! use kiln_optim::{Adam, ExponentialDecay, Optimizer, Schedule};
//!
//! let schedule = ExponentialDecay::new(1e-2, 0.5, 100).staircase(true);
//! assert_eq!(schedule.learning_rate(250), 2.5e-3);
//! let adam = Adam::pytorch().learning_rate(1e-2).amsgrad(true);
//! let optimizer = Optimizer::<kiln_kernels::Cpu>::new(adam).schedule(schedule);
//! assert_eq!(optimizer.learning_rate(), 1e-2);
//! // optimizer.step(&mut model)? after each backward pass.
//! ```

mod algorithm;
mod ema;
mod error;
mod group;
mod optimizer;
mod schedule;
mod setters;

pub use algorithm::{Adagrad, Adam, AdamW, Algorithm, Lion, Nadam, RmsProp, Sgd};
pub use ema::{Ema, EmaState};
pub use error::{Error, Result};
pub use group::ParamGroup;
pub use optimizer::{Clipping, Optimizer, OptimizerState};
pub use schedule::{
    Anneal, Constant, CosineDecay, ExponentialDecay, Monitor, OneCycle, PolynomialDecay,
    ReduceLrOnPlateau, Schedule, StepDecay, Threshold,
};
