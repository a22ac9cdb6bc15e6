//! [`Ema`]: an exponential moving average of a model's weights and saved state,
//! updated after each optimizer step and swapped into the model for evaluation.

use kiln_kernels::ops::ema::{EmaParams, EmaStep};
use kiln_kernels::{Backend, Group, Trainable};

use crate::{Error, Result};

/// Tensors averaged in one call to the backend (a GPU averages up to eight in one
/// launch).
const GROUP: usize = 8;

/// The name errors give.
const NAME: &str = "ema";

/// The average of one tensor.
#[derive(Debug)]
struct Averaged<B: Backend> {
    layer: &'static str,
    name: &'static str,
    /// Values averaged (the tensor's shape's size).
    len: usize,
    /// The average, or the model's own tensor while they are swapped. As long as the
    /// model's buffer, so that a swap hands each side a buffer of the size it had.
    average: B::Buffer,
}

/// An exponential moving average of a model's trainable tensors and of its saved state
/// (batch norm's running statistics): after each update
/// `average = decay * average + (1 - decay) * value`.
///
/// It is PyTorch's `AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay),
/// use_buffers=True)` and Keras's `use_ema=True, ema_momentum=decay`: the first
/// update copies the model, every later one blends it in (as `torch.lerp(average,
/// value, 1 - decay)`, the weight worked out in `f64`). Options:
///
/// - [`every`](Ema::every)`(n)`: average at every `n`-th call of
///   [`update`](Ema::update) only (the `n`-th call copies), for a cheaper step; give
///   a decay meant for `n` steps (`decay.powi(n)`).
/// - [`warmup`](Ema::warmup)`(power)`: timm's `ModelEmaV3` warm-up (and the
///   `ema-pytorch` package's): call `t` (from 1) uses `min(decay, 1 - (1 +
///   t)^-power)`, so that an average that started from random weights forgets them
///   early on. Off by default, as in PyTorch and Keras.
///
/// A training loop calls [`update`](Ema::update) after every optimizer step, and
/// around evaluation [`swap`](Ema::swap) twice: the first swap puts the averages into
/// the model (the model's own tensors wait in the `Ema`), the second puts them back.
/// A swap exchanges buffer handles: no copy, no launch. To keep the averaged weights
/// at the end of training, swap once and drop the `Ema`.
///
/// ```
/// use kiln_kernels::{Cpu, Storage, Trainable};
/// use kiln_optim::Ema;
/// # use kiln_kernels::{ParamMut, ParamRef, ViewParams, VisitParams};
/// # struct Weights { cpu: Cpu, value: <Cpu as Storage>::Buffer, grad: <Cpu as Storage>::Buffer }
/// # impl Trainable<Cpu> for Weights {
/// #     fn backend(&self) -> &Cpu { &self.cpu }
/// #     fn parameters<'a>(&'a self, f: ViewParams<'_, 'a, Cpu>) -> kiln_kernels::Result<()> {
/// #         f(ParamRef { layer: "fc", kind: "Dense", name: "weight", shape: kiln_shape::Shape::new(&[2]), value: &self.value, grad: &self.grad })
/// #     }
/// #     fn visit_parameters<'a>(&'a mut self, f: VisitParams<'_, 'a, Cpu>) -> kiln_kernels::Result<()> {
/// #         f(ParamMut { layer: "fc", kind: "Dense", name: "weight", shape: kiln_shape::Shape::new(&[2]), value: &mut self.value, grad: &mut self.grad })
/// #     }
/// # }
/// # let cpu = Cpu::with_threads(1)?;
/// # let mut model = Weights { value: cpu.alloc_from(&[1.0, 2.0])?, grad: cpu.alloc(2)?, cpu: cpu.clone() };
/// let mut ema = Ema::new(0.75);
/// ema.update(&model)?; // the first update copies: [1, 2]
/// // optimizer.step(&mut model)? moves the weights to [3, 2]; then:
/// # cpu.upload(&[3.0, 2.0], &mut model.value)?;
/// ema.update(&model)?; // 0.75 * [1, 2] + 0.25 * [3, 2]
///
/// ema.swap(&mut model)?; // evaluate with the averages...
/// # let weights = |m: &Weights| cpu.to_host(&m.value, 2);
/// assert_eq!(weights(&model)?, [1.5, 2.0]);
/// ema.swap(&mut model)?; // ...and train on
/// assert_eq!(weights(&model)?, [3.0, 2.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The first update allocates the averages; every later update and swap allocates
/// nothing. [`Ema::state`] and [`Ema::load_state`] save and restore it exactly (a
/// checkpoint keeps it beside the weights).
#[derive(Debug)]
pub struct Ema<B: Backend> {
    decay: f64,
    every: u64,
    warmup: Option<f64>,
    /// The trainable tensors' averages, then the saved state's, in the model's order.
    tensors: Vec<Averaged<B>>,
    /// Calls of `update`.
    steps: u64,
    /// Averages taken (the first a copy).
    updates: u64,
    /// Whether the averages are in the model.
    swapped: bool,
}

/// An [`Ema`]'s state on the host: what a checkpoint stores to resume it.
#[derive(Clone, Debug, PartialEq)]
pub struct EmaState {
    /// The decay.
    pub decay: f64,
    /// Calls of `update` between two averages.
    pub every: u64,
    /// The warm-up's power, if any.
    pub warmup: Option<f64>,
    /// Calls of `update` so far.
    pub steps: u64,
    /// Averages taken so far (the first a copy).
    pub updates: u64,
    /// The averages, keyed as the model's tensors in checkpoints (`conv1.weight`,
    /// `bn1.running_mean`); empty before the first average.
    pub tensors: Vec<(String, Vec<f32>)>,
}

impl<B: Backend> Ema<B> {
    /// An average that keeps `decay` of itself at every update (PyTorch's `decay`,
    /// Keras's `ema_momentum`: 0.999 and 0.99 are usual), with no warm-up.
    pub fn new(decay: f64) -> Self {
        Self {
            decay,
            every: 1,
            warmup: None,
            tensors: Vec::new(),
            steps: 0,
            updates: 0,
            swapped: false,
        }
    }

    /// Averages at every `n`-th call of [`update`](Ema::update) only.
    #[must_use]
    pub fn every(mut self, n: u64) -> Self {
        self.every = n;
        self
    }

    /// timm's warm-up of the decay: update `t` (from 1) uses `min(decay, 1 - (1 +
    /// t)^-power)`; 2/3 for long trainings, 3/4 for short ones.
    #[must_use]
    pub fn warmup(mut self, power: f64) -> Self {
        self.warmup = Some(power);
        self
    }

    /// The decay that call `t` of [`update`](Ema::update) (from 1) uses, warm-up
    /// included.
    pub fn decay_at(&self, t: u64) -> f64 {
        match self.warmup {
            Some(power) => self.decay.min(1.0 - (1.0 + t as f64).powf(-power)),
            None => self.decay,
        }
    }

    /// Calls of [`update`](Ema::update) so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Averages taken so far (the first a copy of the model).
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Whether the averages are in the model (after an odd number of swaps).
    pub fn is_swapped(&self) -> bool {
        self.swapped
    }

    fn error(detail: impl Into<String>) -> Error {
        Error::Config {
            optimizer: NAME,
            detail: detail.into(),
        }
    }

    fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.decay) {
            return Err(Self::error(format!(
                "the decay must lie in [0, 1], got {}",
                self.decay
            )));
        }
        if self.every == 0 {
            return Err(Self::error("`every` must be at least 1"));
        }
        if let Some(power) = self.warmup
            && !(power > 0.0 && power.is_finite())
        {
            return Err(Self::error(format!(
                "the warm-up's power must be positive, got {power}"
            )));
        }
        Ok(())
    }

    /// An error unless the averages are out of the model.
    fn check_not_swapped(&self, what: &str) -> Result<()> {
        if self.swapped {
            return Err(Self::error(format!(
                "the averages are in the model: swap them back before {what}"
            )));
        }
        Ok(())
    }

    /// Fresh averages for every tensor of `model`, holding its values.
    fn fresh<M: Trainable<B>>(model: &M) -> Result<Vec<Averaged<B>>> {
        let backend = model.backend();
        let mut tensors = Vec::new();
        let mut add = |layer, name, len: usize, value: &B::Buffer| -> kiln_kernels::Result<()> {
            let mut average = backend.alloc(backend.len(value).max(len))?;
            backend.copy(value, &mut average, len)?;
            tensors.push(Averaged {
                layer,
                name,
                len,
                average,
            });
            Ok(())
        };
        model.parameters(&mut |p| add(p.layer, p.name, p.shape.size(), p.value))?;
        model.state(&mut |s| add(s.layer, s.name, s.shape.size(), s.value))?;
        Ok(tensors)
    }

    /// An error unless `model`'s tensors are those the averages were made for (names
    /// and sizes, in order). Allocates only to describe a difference.
    fn check_model<M: Trainable<B>>(&self, model: &M) -> Result<()> {
        let mut index = 0;
        let mut mismatch: Option<String> = None;
        let tensors = &self.tensors;
        let mut check = |layer: &'static str, name: &'static str, len: usize| {
            match tensors.get(index) {
                Some(a) if (a.layer, a.name, a.len) == (layer, name, len) => {}
                Some(a) => {
                    mismatch.get_or_insert_with(|| {
                        format!(
                            "tensor {index} is {layer}.{name} of {len} values, but the average \
                             was made for {}.{} of {}",
                            a.layer, a.name, a.len
                        )
                    });
                }
                None => {
                    mismatch.get_or_insert_with(|| {
                        format!(
                            "the model has more tensors than the average ({})",
                            tensors.len()
                        )
                    });
                }
            }
            index += 1;
            Ok(())
        };
        model.parameters(&mut |p| check(p.layer, p.name, p.shape.size()))?;
        model.state(&mut |s| check(s.layer, s.name, s.shape.size()))?;
        if index != self.tensors.len() {
            mismatch.get_or_insert_with(|| {
                format!(
                    "the model has {index} tensors but the average {}",
                    self.tensors.len()
                )
            });
        }
        mismatch.map_or(Ok(()), |detail| Err(Self::error(detail)))
    }

    /// Updates the averages from `model` (call it after each optimizer step): the
    /// first average copies the model, later ones blend it in; calls that
    /// [`every`](Ema::every) skips only count.
    ///
    /// # Errors
    /// When the averages are swapped into the model, when the model's tensors are
    /// not those the averages were made for, and for bad settings (a decay outside
    /// `[0, 1]`, `every` 0).
    pub fn update<M: Trainable<B>>(&mut self, model: &M) -> Result<()> {
        self.check_not_swapped("updating them")?;
        let t = self.steps + 1;
        if self.steps == 0 {
            self.validate()?;
        }
        if !t.is_multiple_of(self.every) {
            self.steps = t;
            return Ok(());
        }
        if self.updates == 0 {
            self.tensors = Self::fresh(model)?;
        } else {
            self.check_model(model)?;
            let decay = self.decay_at(t);
            let backend = model.backend();
            let mut averages = self.tensors.iter_mut();
            let mut group = Group::<EmaStep<'_, B>, GROUP>::default();
            let mut add = |value| -> kiln_kernels::Result<()> {
                let Some(a) = averages.next() else {
                    return Ok(());
                };
                let step = EmaStep {
                    params: EmaParams::new(a.len, decay)?,
                    average: &mut a.average,
                    value,
                };
                group.push(step, |g| backend.ema_update_many(g))
            };
            model.parameters(&mut |p| add(p.value))?;
            model.state(&mut |s| add(s.value))?;
            group.flush(|g| backend.ema_update_many(g))?;
        }
        self.steps = t;
        self.updates += 1;
        Ok(())
    }

    /// Exchanges the averages with `model`'s tensors: after one swap the model holds
    /// the averages (evaluate it), after the next its own tensors again. Buffer
    /// handles move, no value is copied.
    ///
    /// # Errors
    /// Before the first average, and when the model's tensors are not those the
    /// averages were made for; nothing is exchanged then.
    pub fn swap<M: Trainable<B>>(&mut self, model: &mut M) -> Result<()> {
        if self.updates == 0 {
            return Err(Self::error(
                "there is no average to swap in yet: update it after an optimizer step first",
            ));
        }
        self.check_model(model)?;
        let mut averages = self.tensors.iter_mut();
        let mut exchange = |value: &mut B::Buffer| {
            if let Some(a) = averages.next() {
                std::mem::swap(value, &mut a.average);
            }
            Ok(())
        };
        model.visit_parameters(&mut |p| exchange(p.value))?;
        model.visit_state(&mut |s| exchange(s.value))?;
        self.swapped = !self.swapped;
        Ok(())
    }

    /// A copy of the state on the host. Allocates.
    ///
    /// # Errors
    /// While the averages are swapped into the model (swap them back first).
    pub fn state(&self, backend: &B) -> Result<EmaState> {
        self.check_not_swapped("saving them")?;
        let tensors = self
            .tensors
            .iter()
            .map(|a| {
                Ok((
                    format!("{}.{}", a.layer, a.name),
                    backend.to_host(&a.average, a.len)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(EmaState {
            decay: self.decay,
            every: self.every,
            warmup: self.warmup,
            steps: self.steps,
            updates: self.updates,
            tensors,
        })
    }

    /// Restores a state saved by [`Ema::state`] for `model`, so that the average
    /// continues bit for bit. The settings (decay, `every`, warm-up), the tensor
    /// names and sizes must match; the error says which differ, and leaves the
    /// average as it was.
    pub fn load_state<M: Trainable<B>>(&mut self, model: &M, state: &EmaState) -> Result<()> {
        self.check_not_swapped("loading a state")?;
        self.validate()?;
        let describe = |decay: f64, every: u64, warmup: Option<f64>| {
            let warmup = warmup.map_or_else(|| "no warm-up".into(), |p| format!("warm-up {p}"));
            format!("decay {decay}, every {every}, {warmup}")
        };
        if (state.decay, state.every, state.warmup) != (self.decay, self.every, self.warmup) {
            return Err(Self::error(format!(
                "the saved average was made with {}; this one has {}",
                describe(state.decay, state.every, state.warmup),
                describe(self.decay, self.every, self.warmup)
            )));
        }
        let mut tensors = if state.updates == 0 {
            Vec::new()
        } else {
            Self::fresh(model)?
        };
        if state.tensors.len() != tensors.len() {
            return Err(Self::error(format!(
                "the saved average holds {} tensors, the model has {}",
                state.tensors.len(),
                tensors.len()
            )));
        }
        let backend = model.backend();
        for (a, (key, values)) in tensors.iter_mut().zip(&state.tensors) {
            let want = format!("{}.{}", a.layer, a.name);
            if *key != want || values.len() != a.len {
                return Err(Self::error(format!(
                    "expected {want} of {} values in the saved average, found {key} of {}",
                    a.len,
                    values.len()
                )));
            }
            backend.upload(values, &mut a.average)?;
        }
        self.tensors = tensors;
        self.steps = state.steps;
        self.updates = state.updates;
        Ok(())
    }
}
