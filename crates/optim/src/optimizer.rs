//! [`Optimizer`]: an update rule, its learning rate (fixed or scheduled), weight
//! decay, gradient clipping and parameter groups, and the state it keeps for every
//! parameter tensor.

use std::sync::Arc;

use kiln_kernels::ops::optimizer::OptimizerStep;
use kiln_kernels::{Backend, Group, Trainable};

use crate::algorithm::{Decay, StepScalars};
use crate::{Algorithm, Error, ParamGroup, Result, Schedule};

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

/// The weight decay and learning-rate scale of a tensor in `group` (`None`: the
/// optimizer's `defaults`). A group's decay is all the tensor gets: decoupled for the
/// rules that decay so, coupled for the others.
fn settings(algorithm: Algorithm, defaults: Decay, group: Option<&ParamGroup>) -> (Decay, f64) {
    let Some(group) = group else {
        return (defaults, 1.0);
    };
    let decay = match (group.weight_decay, algorithm.decoupled_decay()) {
        (None, _) => defaults,
        (Some(wd), Some(_)) => Decay {
            coupled: 0.0,
            decoupled: wd,
        },
        (Some(wd), None) => Decay {
            coupled: wd,
            decoupled: 0.0,
        },
    };
    (decay, group.learning_rate_scale)
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
    /// The group the tensor belongs to (`None`: the optimizer's defaults), resolved
    /// when the optimizer first sees the model.
    group: Option<usize>,
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
/// Tensors can be treated apart in [`ParamGroup`]s (no weight decay on biases and
/// batch-norm parameters, a lower rate for some layers): see [`Optimizer::group`].
///
/// State is allocated, and each tensor's group resolved, at the first
/// [`Optimizer::step`]; every later step allocates nothing. [`Optimizer::state`] and
/// [`Optimizer::load_state`] save and restore it exactly.
#[derive(Debug)]
pub struct Optimizer<B: Backend> {
    algorithm: Algorithm,
    lr: LearningRate,
    weight_decay: f64,
    clipping: Clipping,
    groups: Vec<ParamGroup>,
    /// The groups changed since the tensors' were resolved.
    regroup: bool,
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
    /// The optimizer's groups, in order, as [`ParamGroup`]'s `Display` writes them
    /// (selectors and settings); empty without groups. A state loads only into an
    /// optimizer with the same groups.
    pub groups: Vec<String>,
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
            groups: Vec::new(),
            regroup: false,
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

    /// Adds a group: tensors with a weight decay and a learning-rate scale of their
    /// own, selected by layer kind or name pattern (see [`ParamGroup`]). Of several groups
    /// the first that takes a tensor wins; tensors that no group takes keep the
    /// optimizer's settings. Every group must take at least one tensor of the model,
    /// else the first step is an error that lists the model's layer kinds (a
    /// misspelt kind or pattern would otherwise go unnoticed).
    ///
    /// ```
    /// use kiln_optim::{AdamW, OneCycle, Optimizer, ParamGroup};
    ///
    /// // timm's and Keras's recipe: decoupled decay on the weights only, the
    /// // normalisation layers and biases without; one one-cycle schedule for both
    /// // groups, the second at half the rate.
    /// let optimizer = Optimizer::<kiln_kernels::Cpu>::new(AdamW { weight_decay: 0.05, ..AdamW::pytorch() })
    ///     .schedule(OneCycle::new(1e-3, 10_000))
    ///     .group(ParamGroup::new().kinds(["BatchNorm"]).names(["*.bias"]).weight_decay(0.0).learning_rate_scale(0.5));
    /// assert_eq!(optimizer.groups()[0].to_string(),
    ///     "group(kinds [BatchNorm], names [*.bias], weight_decay 0, learning_rate_scale 0.5)");
    /// ```
    #[must_use]
    pub fn group(mut self, group: ParamGroup) -> Self {
        self.groups.push(group);
        self.regroup = true;
        self
    }

    /// The groups, in the order they were added.
    pub fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    /// Which group each tensor of `model` falls in (`None`: the optimizer's defaults),
    /// keyed `layer.name` in the model's order: what the first step resolves.
    /// Allocates.
    pub fn assignment<M: Trainable<B>>(&self, model: &M) -> Result<Vec<(String, Option<usize>)>> {
        let mut out = Vec::new();
        model.parameters(&mut |p| {
            out.push((p.key(), self.group_of(p.kind, p.layer, p.name)));
            Ok(())
        })?;
        Ok(out)
    }

    /// The first group that takes a tensor.
    fn group_of(&self, kind: &str, layer: &str, name: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.selects(kind, layer, name))
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
        for group in &self.groups {
            group.check().map_err(|d| self.config_error(d))?;
        }
        Ok(())
    }

    /// Fresh state for every tensor of `model`, each with its group resolved; an
    /// error when a group takes no tensor.
    fn fresh_slots<M: Trainable<B>>(&self, model: &M) -> Result<Vec<Slot<B>>> {
        let backend = model.backend();
        let slot_count = self.algorithm.slot_names().len();
        let algorithm = self.algorithm;
        let mut slots = Vec::new();
        model.parameters(&mut |p| {
            let len = p.shape.size();
            let mut state = backend.alloc(slot_count * len)?;
            if (0..slot_count).any(|s| algorithm.initial_state(s) != 0.0) {
                let init: Vec<f32> = (0..slot_count)
                    .flat_map(|s| std::iter::repeat_n(algorithm.initial_state(s), len))
                    .collect();
                backend.upload(&init, &mut state)?;
            }
            slots.push(Slot {
                layer: p.layer,
                name: p.name,
                len,
                group: self.group_of(p.kind, p.layer, p.name),
                state,
                grad_scale: 1.0,
            });
            Ok(())
        })?;
        self.check_groups_take(model, slots.iter().map(|s| s.group))?;
        Ok(slots)
    }

    /// An error naming the first group that takes none of the tensors, and the
    /// model's layer kinds.
    fn check_groups_take<M: Trainable<B>>(
        &self,
        model: &M,
        groups: impl Iterator<Item = Option<usize>> + Clone,
    ) -> Result<()> {
        let Some(empty) = (0..self.groups.len()).find(|&g| !groups.clone().any(|t| t == Some(g)))
        else {
            return Ok(());
        };
        let mut kinds: Vec<&str> = Vec::new();
        model.parameters(&mut |p| {
            if !kinds.contains(&p.kind) {
                kinds.push(p.kind);
            }
            Ok(())
        })?;
        let earlier = if empty > 0 {
            " (or earlier groups took them all)"
        } else {
            ""
        };
        Err(self.config_error(format!(
            "{} (group {empty}) selects no tensor of the model{earlier}; its tensors are of \
             layer kinds {}",
            self.groups[empty],
            kinds.join(", ")
        )))
    }

    /// Resolves every tensor's group again, keeping its state (groups were added
    /// after the state was made).
    fn resolve_groups<M: Trainable<B>>(&mut self, model: &M) -> Result<()> {
        let mut resolved = Vec::with_capacity(self.slots.len());
        model.parameters(&mut |p| {
            resolved.push(self.group_of(p.kind, p.layer, p.name));
            Ok(())
        })?;
        self.check_groups_take(model, resolved.iter().copied())?;
        for (slot, group) in self.slots.iter_mut().zip(resolved) {
            slot.group = group;
        }
        self.regroup = false;
        Ok(())
    }

    /// Makes sure every tensor of `model` has its state (allocating it and resolving
    /// its group the first time) and works out this step's per-tensor gradient
    /// scales.
    fn prepare<M: Trainable<B>>(&mut self, model: &M) -> Result<()> {
        if self.slots.is_empty() {
            self.slots = self.fresh_slots(model)?;
            self.regroup = false;
        } else if self.regroup {
            self.resolve_groups(model)?;
        }
        let backend = model.backend();
        let (clip_norm, clip_global) = (self.clipping.norm, self.clipping.global_norm);
        let mut index = 0;
        let mut total = 0.0f64;
        let mut mismatch: Option<String> = None;
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
            if let Some(slot) = slots.get_mut(index) {
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
        if index != self.slots.len() {
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
        let algorithm = self.algorithm;
        let defaults = Decay {
            coupled: self.weight_decay,
            decoupled: algorithm.decoupled_decay().unwrap_or(0.0),
        };
        let groups = &self.groups;
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
            let (decay, scale) =
                settings(algorithm, defaults, slot.group.and_then(|g| groups.get(g)));
            let mut params = algorithm.params(t, lr * scale, decay, scalars, len);
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
            groups: self.groups.iter().map(ToString::to_string).collect(),
            tensors,
        })
    }

    /// Restores a state saved by [`Optimizer::state`] for `model`, so that training
    /// continues bit for bit. The rule, the groups, the tensor names and sizes must
    /// match; the error says which differ, and leaves the optimizer as it was.
    pub fn load_state<M: Trainable<B>>(&mut self, model: &M, state: &OptimizerState) -> Result<()> {
        let name = self.algorithm.name();
        if state.algorithm != name {
            return Err(self.config_error(format!(
                "the saved state is {}'s, not {name}'s",
                state.algorithm
            )));
        }
        self.validate()?;
        let groups: Vec<String> = self.groups.iter().map(ToString::to_string).collect();
        if state.groups != groups {
            let list = |g: &[String]| {
                if g.is_empty() {
                    "no groups".to_string()
                } else {
                    g.join("; ")
                }
            };
            return Err(self.config_error(format!(
                "the saved state was made with {}, but this optimizer has {}: build it \
                 with the same groups, in the same order",
                list(&state.groups),
                list(&groups)
            )));
        }
        let fresh = state.step == 0 && state.tensors.is_empty();
        // Saved before the first update: the tensors get their state at the next
        // step, as in a new optimizer.
        let mut slots = if fresh {
            Vec::new()
        } else {
            self.fresh_slots(model)?
        };
        let names = self.algorithm.slot_names();
        if !fresh && state.tensors.len() != slots.len() * names.len() {
            return Err(self.config_error(format!(
                "the saved state holds {} tensors, the model needs {}",
                state.tensors.len(),
                slots.len() * names.len()
            )));
        }
        let backend = model.backend();
        let mut saved = state.tensors.iter();
        for slot in &mut slots {
            let mut values = Vec::with_capacity(names.len() * slot.len);
            for slot_name in names {
                let key = format!("{}.{}.{}", slot.layer, slot.name, slot_name);
                match saved.next() {
                    Some((k, v)) if *k == key && v.len() == slot.len => values.extend_from_slice(v),
                    Some((k, v)) => {
                        return Err(self.config_error(format!(
                            "expected {key} of {} values in the saved state, found {k} of {}",
                            slot.len,
                            v.len()
                        )));
                    }
                    None => return Err(self.config_error("the saved state ended early".into())),
                }
            }
            backend.upload(&values, &mut slot.state)?;
        }
        let mut scalars = StepScalars::default();
        for (key, value) in &state.scalars {
            if key == "mu_product" {
                scalars.mu_product = *value as f32;
            }
        }
        self.slots = slots;
        self.regroup = false;
        self.scalars = scalars;
        self.step = state.step;
        if let (Some(lr), LearningRate::Fixed(_)) = (state.learning_rate, &self.lr) {
            self.lr = LearningRate::Fixed(lr);
        }
        Ok(())
    }
}
