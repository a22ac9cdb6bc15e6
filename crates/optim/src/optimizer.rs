//! [`Optimizer`]: an update rule, its learning rate (fixed or scheduled), weight
//! decay and gradient clipping, and the state it keeps for every parameter tensor.

use std::sync::Arc;

use kiln_kernels::ops::optimizer::OptimizerStep;
use kiln_kernels::{Backend, Group, Trainable};

use crate::algorithm::StepScalars;
use crate::{Algorithm, Error, Result, Schedule};

/// Tensors the optimizer hands the backend at once (a GPU updates up to eight in one
/// launch).
const GROUP: usize = 8;

/// Gradient clipping, applied before weight decay and the update. The norms are
/// those of the raw gradients; clipping by value comes after scaling by norm.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Clipping {
    /// Clamp every gradient value to `[-value, value]` (Keras's `clipvalue`,
    /// `torch.nn.utils.clip_grad_value_`).
    pub value: Option<f64>,
    /// Scale each tensor's gradient so its L2 norm is at most this (Keras's
    /// `clipnorm`).
    pub norm: Option<f64>,
    /// Scale all gradients together so their joint L2 norm is at most this (Keras's
    /// `global_clipnorm`, `torch.nn.utils.clip_grad_norm_`).
    pub global_norm: Option<f64>,
}

/// A learning rate must be finite and not negative.
fn check_rate(lr: f64) -> std::result::Result<(), String> {
    if lr >= 0.0 && lr.is_finite() {
        Ok(())
    } else {
        Err(format!(
            "the learning rate must be finite and >= 0, got {lr}"
        ))
    }
}

/// The scale that brings a norm down to `max`, as `clip_grad_norm_` computes it.
fn clip_scale(max: f64, norm: f64) -> f64 {
    (max / (norm + 1e-6)).min(1.0)
}

/// Where the learning rate comes from.
#[derive(Clone, Debug)]
enum LearningRate {
    Fixed(f64),
    Scheduled(Arc<dyn Schedule>),
}

/// The state of one parameter tensor.
#[derive(Debug)]
struct Slot<B: Backend> {
    layer: &'static str,
    name: &'static str,
    len: usize,
    /// `slots * len` values: each state slot after the other.
    state: B::Buffer,
    /// The gradient's scale this step (clipping by norm).
    grad_scale: f64,
}

/// An update rule applied to every trainable tensor of a model.
///
/// ```
/// use kiln_optim::{Adam, CosineDecay, Optimizer};
///
/// // Keras's Adam (lr 1e-3, epsilon 1e-7), a cosine schedule, clipping by global norm.
/// let optimizer = Optimizer::<kiln_kernels::Cpu>::new(Adam::default())
///     .schedule(CosineDecay::new(1e-3, 10_000))
///     .clip_global_norm(1.0);
/// assert_eq!(optimizer.learning_rate(), 1e-3);
/// ```
///
/// State is allocated at the first [`Optimizer::step`]; every later step allocates
/// nothing. [`Optimizer::state`] and [`Optimizer::load_state`] save and restore it
/// exactly.
#[derive(Debug)]
pub struct Optimizer<B: Backend> {
    algorithm: Algorithm,
    lr: LearningRate,
    weight_decay: f64,
    clipping: Clipping,
    slots: Vec<Slot<B>>,
    step: u64,
    scalars: StepScalars,
}

/// The optimizer's state, on the host: what a checkpoint stores to resume training.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// The rule's name (`adam`).
    pub algorithm: String,
    /// Updates done.
    pub step: u64,
    /// The fixed learning rate (it may have been lowered on a plateau); `None` when a
    /// schedule drives it.
    pub learning_rate: Option<f64>,
    /// Named scalars (Nadam's `mu_product`).
    pub scalars: Vec<(String, f64)>,
    /// One entry a parameter tensor and state slot, keyed `conv1.weight.exp_avg`.
    pub tensors: Vec<(String, Vec<f32>)>,
}

impl<B: Backend> Optimizer<B> {
    /// An optimizer with `algorithm`'s own learning rate, no weight decay and no
    /// clipping.
    pub fn new(algorithm: impl Into<Algorithm>) -> Self {
        let algorithm = algorithm.into();
        Self {
            lr: LearningRate::Fixed(algorithm.learning_rate()),
            algorithm,
            weight_decay: 0.0,
            clipping: Clipping::default(),
            slots: Vec::new(),
            step: 0,
            scalars: StepScalars::default(),
        }
    }

    /// A fixed learning rate, replacing the rule's own.
    #[must_use]
    pub fn learning_rate_fixed(mut self, lr: f64) -> Self {
        self.lr = LearningRate::Fixed(lr);
        self
    }

    /// A learning-rate schedule, replacing the rule's own rate.
    #[must_use]
    pub fn schedule(mut self, schedule: impl Schedule + 'static) -> Self {
        self.lr = LearningRate::Scheduled(Arc::new(schedule));
        self
    }

    /// Coupled (L2) weight decay: `weight_decay * param` is added to every gradient
    /// (PyTorch's `weight_decay=` of SGD, Adam, RMSprop, Adagrad and NAdam). For
    /// decoupled decay use [`AdamW`](crate::AdamW) or [`Lion`](crate::Lion).
    #[must_use]
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Clamps every gradient value to `[-value, value]`.
    #[must_use]
    pub fn clip_value(mut self, value: f64) -> Self {
        self.clipping.value = Some(value);
        self
    }

    /// Scales each tensor's gradient to an L2 norm of at most `norm`.
    #[must_use]
    pub fn clip_norm(mut self, norm: f64) -> Self {
        self.clipping.norm = Some(norm);
        self
    }

    /// Scales all gradients together to a joint L2 norm of at most `norm`.
    #[must_use]
    pub fn clip_global_norm(mut self, norm: f64) -> Self {
        self.clipping.global_norm = Some(norm);
        self
    }

    /// The update rule.
    pub fn algorithm(&self) -> &Algorithm {
        &self.algorithm
    }

    /// Updates done so far.
    pub fn iterations(&self) -> u64 {
        self.step
    }

    /// The learning rate the next update will use.
    pub fn learning_rate(&self) -> f64 {
        match &self.lr {
            LearningRate::Fixed(lr) => *lr,
            LearningRate::Scheduled(s) => s.learning_rate(self.step),
        }
    }

    /// Replaces a fixed learning rate (what a plateau reducer does). Refused when a
    /// schedule drives the rate, as in Keras.
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        check_rate(lr).map_err(|d| self.config_error(d))?;
        match self.lr {
            LearningRate::Fixed(_) => {
                self.lr = LearningRate::Fixed(lr);
                Ok(())
            }
            LearningRate::Scheduled(_) => Err(Error::Config {
                optimizer: self.algorithm.name(),
                detail: "the learning rate follows a schedule and cannot be set".into(),
            }),
        }
    }

    fn config_error(&self, detail: String) -> Error {
        Error::Config {
            optimizer: self.algorithm.name(),
            detail,
        }
    }

    fn validate(&self) -> Result<()> {
        self.algorithm
            .validate()
            .map_err(|d| self.config_error(d))?;
        let bad = |v: Option<f64>| v.is_some_and(|v| !(v > 0.0 && v.is_finite()));
        if bad(self.clipping.value) || bad(self.clipping.norm) || bad(self.clipping.global_norm) {
            return Err(self.config_error(format!(
                "clipping bounds must be positive: {:?}",
                self.clipping
            )));
        }
        if let LearningRate::Fixed(lr) = self.lr {
            check_rate(lr).map_err(|d| self.config_error(d))?;
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(self.config_error(format!(
                "weight decay must be >= 0, got {}",
                self.weight_decay
            )));
        }
        Ok(())
    }

    /// Makes sure every tensor of `model` has its state (allocating it the first
    /// time) and works out this step's per-tensor gradient scales.
    fn prepare<M: Trainable<B>>(&mut self, model: &M) -> Result<()> {
        let backend = model.backend();
        let first = self.slots.is_empty();
        let slot_count = self.algorithm.slot_names().len();
        let (clip_norm, clip_global) = (self.clipping.norm, self.clipping.global_norm);
        let mut index = 0;
        let mut total = 0.0f64;
        let mut fresh: Vec<Slot<B>> = Vec::new();
        let mut mismatch: Option<String> = None;
        let algorithm = self.algorithm;
        let slots = &mut self.slots;
        model.parameters(&mut |p| {
            let len = p.shape.size();
            let squares = if clip_norm.is_some() || clip_global.is_some() {
                backend.sum_squares(p.grad, len)?
            } else {
                0.0
            };
            total += squares;
            let grad_scale = clip_norm.map_or(1.0, |max| clip_scale(max, squares.sqrt()));
            if first {
                let mut state = backend.alloc(slot_count * len)?;
                if (0..slot_count).any(|s| algorithm.initial_state(s) != 0.0) {
                    let init: Vec<f32> = (0..slot_count)
                        .flat_map(|s| std::iter::repeat_n(algorithm.initial_state(s), len))
                        .collect();
                    backend.upload(&init, &mut state)?;
                }
                fresh.push(Slot {
                    layer: p.layer,
                    name: p.name,
                    len,
                    state,
                    grad_scale,
                });
            } else if let Some(slot) = slots.get_mut(index) {
                if (slot.layer, slot.name, slot.len) != (p.layer, p.name, len) && mismatch.is_none()
                {
                    mismatch = Some(format!(
                        "tensor {index} is {}.{} of {len} values, but the optimizer's state \
                         was made for {}.{} of {}",
                        p.layer, p.name, slot.layer, slot.name, slot.len
                    ));
                }
                slot.grad_scale = grad_scale;
            } else if mismatch.is_none() {
                mismatch = Some(format!(
                    "the model has more tensors than the optimizer's state ({})",
                    slots.len()
                ));
            }
            index += 1;
            Ok(())
        })?;
        if first {
            self.slots = fresh;
        } else if index != self.slots.len() {
            mismatch.get_or_insert(format!(
                "the model has {index} tensors but the optimizer's state {}",
                self.slots.len()
            ));
        }
        if let Some(detail) = mismatch {
            return Err(self.config_error(detail));
        }
        if let Some(max) = clip_global {
            let scale = clip_scale(max, total.sqrt());
            for slot in &mut self.slots {
                slot.grad_scale *= scale;
            }
        }
        Ok(())
    }

    /// Updates every trainable tensor of `model` from its accumulated gradient.
    pub fn step<M: Trainable<B>>(&mut self, model: &mut M) -> Result<()> {
        if self.step == 0 && self.slots.is_empty() {
            self.validate()?;
        }
        self.prepare(model)?;
        let lr = self.learning_rate();
        let t = self.step + 1;
        let mut scalars = self.scalars;
        self.algorithm.advance(t, &mut scalars);
        let backend = model.backend().clone();
        let clip_value = self.clipping.value.map_or(f32::INFINITY, |v| v as f32);
        let (algorithm, weight_decay) = (self.algorithm, self.weight_decay);
        // The tensors go to the backend in groups, which a GPU updates in one launch
        // each.
        let mut slots = self.slots.iter_mut();
        let mut group = Group::<OptimizerStep<'_, B>, GROUP>::default();
        model.visit_parameters(&mut |p| {
            let Some(slot) = slots.next() else {
                return Ok(());
            };
            let len = u32::try_from(slot.len).map_err(|_| kiln_kernels::Error::InvalidParams {
                op: "optimizer_step",
                detail: format!("{}.{} has more than 2^32 values", slot.layer, slot.name),
            })?;
            let mut params = algorithm.params(t, lr, weight_decay, scalars, len);
            params.grad_scale = slot.grad_scale as f32;
            params.clip_value = clip_value;
            let step = OptimizerStep {
                params,
                param: p.value,
                grad: p.grad,
                state: &mut slot.state,
            };
            group.push(step, |g| backend.optimizer_step_many(g))
        })?;
        group.flush(|g| backend.optimizer_step_many(g))?;
        self.scalars = scalars;
        self.step = t;
        Ok(())
    }

    /// A copy of the state on the host. Allocates.
    pub fn state(&self, backend: &B) -> Result<OptimizerState> {
        let names = self.algorithm.slot_names();
        let mut tensors = Vec::with_capacity(self.slots.len() * names.len());
        for slot in &self.slots {
            let values = backend.to_host(&slot.state, names.len() * slot.len)?;
            for (s, name) in names.iter().enumerate() {
                tensors.push((
                    format!("{}.{}.{}", slot.layer, slot.name, name),
                    values[s * slot.len..(s + 1) * slot.len].to_vec(),
                ));
            }
        }
        Ok(OptimizerState {
            algorithm: self.algorithm.name().to_string(),
            step: self.step,
            learning_rate: match self.lr {
                LearningRate::Fixed(lr) => Some(lr),
                LearningRate::Scheduled(_) => None,
            },
            scalars: vec![("mu_product".into(), f64::from(self.scalars.mu_product))],
            tensors,
        })
    }

    /// Restores a state saved by [`Optimizer::state`] for `model`, so that training
    /// continues bit for bit. The rule, tensor names and sizes must match; the error
    /// says which differ.
    pub fn load_state<M: Trainable<B>>(&mut self, model: &M, state: &OptimizerState) -> Result<()> {
        let name = self.algorithm.name();
        if state.algorithm != name {
            return Err(self.config_error(format!(
                "the saved state is {}'s, not {name}'s",
                state.algorithm
            )));
        }
        self.validate()?;
        self.slots.clear();
        self.prepare(model)?;
        let names = self.algorithm.slot_names();
        let backend = model.backend();
        if state.tensors.len() != self.slots.len() * names.len() {
            return Err(self.config_error(format!(
                "the saved state holds {} tensors, the model needs {}",
                state.tensors.len(),
                self.slots.len() * names.len()
            )));
        }
        let mut saved = state.tensors.iter();
        for slot in &mut self.slots {
            let mut values = Vec::with_capacity(names.len() * slot.len);
            for slot_name in names {
                let key = format!("{}.{}.{}", slot.layer, slot.name, slot_name);
                match saved.next() {
                    Some((k, v)) if *k == key && v.len() == slot.len => values.extend_from_slice(v),
                    Some((k, v)) => {
                        return Err(Error::Config {
                            optimizer: name,
                            detail: format!(
                                "expected {key} of {} values in the saved state, found {k} of {}",
                                slot.len,
                                v.len()
                            ),
                        });
                    }
                    None => {
                        return Err(Error::Config {
                            optimizer: name,
                            detail: "the saved state ended early".into(),
                        });
                    }
                }
            }
            backend.upload(&values, &mut slot.state)?;
        }
        self.step = state.step;
        if let (Some(lr), LearningRate::Fixed(_)) = (state.learning_rate, &self.lr) {
            self.lr = LearningRate::Fixed(lr);
        }
        for (key, value) in &state.scalars {
            if key == "mu_product" {
                self.scalars.mu_product = *value as f32;
            }
        }
        Ok(())
    }
}
