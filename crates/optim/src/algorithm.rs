//! The update rules and their hyper-parameters. `Default` gives Keras's defaults
//! where Keras has the optimizer; `pytorch()` gives `torch.optim`'s.

use kiln_kernels::ops::optimizer::{
    FLAG_AMSGRAD, FLAG_CENTERED, FLAG_NESTEROV, OptimizerKind, OptimizerParams,
};

/// Stochastic gradient descent, with momentum and Nesterov's variant
/// (`torch.optim.SGD`'s formulation: `buf = momentum * buf + g; p -= lr * buf`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate (Keras: 0.01).
    pub learning_rate: f64,
    /// Momentum (0: none).
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

impl Default for Sgd {
    fn default() -> Self {
        Self {
            learning_rate: 0.01,
            momentum: 0.0,
            nesterov: false,
        }
    }
}

/// Adam (Kingma and Ba), with the AMSGrad variant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate (1e-3).
    pub learning_rate: f64,
    /// First-moment decay (0.9).
    pub beta1: f64,
    /// Second-moment decay (0.999).
    pub beta2: f64,
    /// Added to the denominator (Keras: 1e-7, PyTorch: 1e-8).
    pub epsilon: f64,
    /// Keep the largest second moment seen (AMSGrad).
    pub amsgrad: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
        }
    }
}

impl Adam {
    /// `torch.optim.Adam`'s defaults: as Keras's but epsilon 1e-8.
    pub fn pytorch() -> Self {
        Self {
            epsilon: 1e-8,
            ..Self::default()
        }
    }
}

/// Adam with decoupled weight decay (Loshchilov and Hutter): the parameter shrinks by
/// `lr * weight_decay` before each update, outside the adaptive scaling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    /// The Adam part.
    pub adam: Adam,
    /// Decoupled weight decay (Keras: 0.004, PyTorch: 0.01).
    pub weight_decay: f64,
}

impl Default for AdamW {
    fn default() -> Self {
        Self {
            adam: Adam::default(),
            weight_decay: 0.004,
        }
    }
}

impl AdamW {
    /// `torch.optim.AdamW`'s defaults: epsilon 1e-8, weight decay 0.01.
    pub fn pytorch() -> Self {
        Self {
            adam: Adam::pytorch(),
            weight_decay: 0.01,
        }
    }
}

/// RMSprop: divides by a running root mean square of the gradient
/// (`torch.optim.RMSprop`'s formulation: epsilon added after the square root).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsProp {
    /// Learning rate (Keras: 1e-3, PyTorch: 1e-2).
    pub learning_rate: f64,
    /// Decay of the running mean square (Keras's `rho` 0.9, PyTorch's `alpha` 0.99).
    pub rho: f64,
    /// Momentum (0: none).
    pub momentum: f64,
    /// Added to the denominator (Keras: 1e-7, PyTorch: 1e-8).
    pub epsilon: f64,
    /// Divide by the variance estimate instead of the raw second moment.
    pub centered: bool,
}

impl Default for RmsProp {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
        }
    }
}

impl RmsProp {
    /// `torch.optim.RMSprop`'s defaults.
    pub fn pytorch() -> Self {
        Self {
            learning_rate: 1e-2,
            rho: 0.99,
            epsilon: 1e-8,
            ..Self::default()
        }
    }
}

/// Adagrad: divides by the root of the sum of all squared gradients so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adagrad {
    /// Learning rate (Keras: 1e-3, PyTorch: 1e-2).
    pub learning_rate: f64,
    /// The sum's starting value (Keras: 0.1, PyTorch: 0).
    pub initial_accumulator: f64,
    /// Added to the denominator (Keras: 1e-7, PyTorch: 1e-10).
    pub epsilon: f64,
    /// Rate decay: step `t` uses `lr / (1 + (t - 1) * lr_decay)` (PyTorch's).
    pub lr_decay: f64,
}

impl Default for Adagrad {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            initial_accumulator: 0.1,
            epsilon: 1e-7,
            lr_decay: 0.0,
        }
    }
}

impl Adagrad {
    /// `torch.optim.Adagrad`'s defaults.
    pub fn pytorch() -> Self {
        Self {
            learning_rate: 1e-2,
            initial_accumulator: 0.0,
            epsilon: 1e-10,
            lr_decay: 0.0,
        }
    }
}

/// Nadam: Adam with Nesterov momentum and Dozat's momentum schedule
/// (`torch.optim.NAdam`'s formulation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Nadam {
    /// Learning rate (Keras: 1e-3, PyTorch: 2e-3).
    pub learning_rate: f64,
    /// First-moment decay (0.9).
    pub beta1: f64,
    /// Second-moment decay (0.999).
    pub beta2: f64,
    /// Added to the denominator (Keras: 1e-7, PyTorch: 1e-8).
    pub epsilon: f64,
    /// The momentum schedule's decay (0.004).
    pub momentum_decay: f64,
}

impl Default for Nadam {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
            momentum_decay: 4e-3,
        }
    }
}

impl Nadam {
    /// `torch.optim.NAdam`'s defaults.
    pub fn pytorch() -> Self {
        Self {
            learning_rate: 2e-3,
            epsilon: 1e-8,
            ..Self::default()
        }
    }
}

/// Lion (Chen et al., 2023): the sign of an interpolated momentum, with decoupled
/// weight decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lion {
    /// Learning rate (1e-3, as Keras; the paper suggests 3-10x smaller than Adam's).
    pub learning_rate: f64,
    /// Interpolation for the update's sign (0.9).
    pub beta1: f64,
    /// Momentum decay (0.99).
    pub beta2: f64,
    /// Decoupled weight decay (0).
    pub weight_decay: f64,
}

impl Default for Lion {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.99,
            weight_decay: 0.0,
        }
    }
}

/// One of the update rules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Algorithm {
    /// [`Sgd`].
    Sgd(Sgd),
    /// [`Adam`].
    Adam(Adam),
    /// [`AdamW`].
    AdamW(AdamW),
    /// [`RmsProp`].
    RmsProp(RmsProp),
    /// [`Adagrad`].
    Adagrad(Adagrad),
    /// [`Nadam`].
    Nadam(Nadam),
    /// [`Lion`].
    Lion(Lion),
}

macro_rules! from_rule {
    ($($rule:ident),*) => {$(
        impl From<$rule> for Algorithm {
            fn from(rule: $rule) -> Self {
                Self::$rule(rule)
            }
        }
    )*};
}
from_rule!(Sgd, Adam, AdamW, RmsProp, Adagrad, Nadam, Lion);

/// Per-step values an algorithm carries across tensors (Nadam's momentum product).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct StepScalars {
    /// Nadam's running product of the momentum schedule, in `f32` as PyTorch keeps it.
    pub mu_product: f32,
}

impl Default for StepScalars {
    fn default() -> Self {
        Self { mu_product: 1.0 }
    }
}

/// The weight decay of one tensor: coupled (L2, added to the gradient) and
/// decoupled (the parameter shrunk by `lr * decoupled`, for AdamW and Lion).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Decay {
    pub coupled: f64,
    pub decoupled: f64,
}

/// `f64` to the kernel's `f32`.
fn f(v: f64) -> f32 {
    v as f32
}

impl Algorithm {
    /// The name used in messages and checkpoints (`adam`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sgd(_) => "sgd",
            Self::Adam(_) => "adam",
            Self::AdamW(_) => "adamw",
            Self::RmsProp(_) => "rmsprop",
            Self::Adagrad(_) => "adagrad",
            Self::Nadam(_) => "nadam",
            Self::Lion(_) => "lion",
        }
    }

    /// The rule's own learning rate, used unless a schedule is given.
    pub fn learning_rate(&self) -> f64 {
        match self {
            Self::Sgd(a) => a.learning_rate,
            Self::Adam(a) => a.learning_rate,
            Self::AdamW(a) => a.adam.learning_rate,
            Self::RmsProp(a) => a.learning_rate,
            Self::Adagrad(a) => a.learning_rate,
            Self::Nadam(a) => a.learning_rate,
            Self::Lion(a) => a.learning_rate,
        }
    }

    /// Checks the hyper-parameters; the message says which is wrong.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let unit = |name: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must lie in [0, 1), got {v}"))
            }
        };
        let positive = |name: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("{name} must be positive, got {v}"))
            }
        };
        let non_negative = |name: &str, v: f64| {
            if v >= 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("{name} must be >= 0, got {v}"))
            }
        };
        match self {
            Self::Sgd(a) => {
                unit("momentum", a.momentum)?;
                if a.nesterov && a.momentum == 0.0 {
                    return Err("Nesterov momentum needs momentum > 0".into());
                }
            }
            Self::Adam(a) | Self::AdamW(AdamW { adam: a, .. }) => {
                unit("beta1", a.beta1)?;
                unit("beta2", a.beta2)?;
                non_negative("epsilon", a.epsilon)?;
            }
            Self::RmsProp(a) => {
                unit("rho", a.rho)?;
                unit("momentum", a.momentum)?;
                non_negative("epsilon", a.epsilon)?;
            }
            Self::Adagrad(a) => {
                non_negative("initial_accumulator", a.initial_accumulator)?;
                non_negative("epsilon", a.epsilon)?;
                non_negative("lr_decay", a.lr_decay)?;
            }
            Self::Nadam(a) => {
                unit("beta1", a.beta1)?;
                unit("beta2", a.beta2)?;
                non_negative("epsilon", a.epsilon)?;
                non_negative("momentum_decay", a.momentum_decay)?;
            }
            Self::Lion(a) => {
                unit("beta1", a.beta1)?;
                unit("beta2", a.beta2)?;
            }
        }
        if let Self::AdamW(a) = self {
            non_negative("weight_decay", a.weight_decay)?;
        }
        if let Self::Lion(a) = self {
            non_negative("weight_decay", a.weight_decay)?;
        }
        positive("learning rate", self.learning_rate())
    }

    /// The rule's decoupled weight decay (AdamW's and Lion's `weight_decay`); `None`
    /// for the rules that have none.
    pub(crate) fn decoupled_decay(&self) -> Option<f64> {
        match self {
            Self::AdamW(a) => Some(a.weight_decay),
            Self::Lion(a) => Some(a.weight_decay),
            _ => None,
        }
    }

    /// The names of the state slots each parameter tensor keeps (`exp_avg`,
    /// `exp_avg_sq` for Adam), in the kernel's order: the optimizer's memory is this
    /// many copies of the parameters.
    pub fn slot_names(&self) -> &'static [&'static str] {
        match self {
            Self::Sgd(a) if a.momentum != 0.0 => &["momentum_buffer"],
            Self::Sgd(_) => &[],
            Self::Adam(a) | Self::AdamW(AdamW { adam: a, .. }) if a.amsgrad => {
                &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
            }
            Self::Adam(_) | Self::AdamW(_) | Self::Nadam(_) => &["exp_avg", "exp_avg_sq"],
            Self::RmsProp(a) => match (a.momentum > 0.0, a.centered) {
                (true, true) => &["square_avg", "momentum_buffer", "grad_avg"],
                (true, false) => &["square_avg", "momentum_buffer"],
                (false, true) => &["square_avg", "grad_avg"],
                (false, false) => &["square_avg"],
            },
            Self::Adagrad(_) => &["sum"],
            Self::Lion(_) => &["exp_avg"],
        }
    }

    /// The value state slots start from (Adagrad's accumulator; zero elsewhere).
    pub(crate) fn initial_state(&self, slot: usize) -> f32 {
        match self {
            Self::Adagrad(a) if slot == 0 => f(a.initial_accumulator),
            _ => 0.0,
        }
    }

    /// Advances the per-step scalars to step `t` (1 for the first update).
    pub(crate) fn advance(&self, t: u64, scalars: &mut StepScalars) {
        if let Self::Nadam(a) = self {
            let mu = a.beta1 * (1.0 - 0.5 * 0.96f64.powf(t as f64 * a.momentum_decay));
            scalars.mu_product *= f(mu);
        }
    }

    /// The kernel parameters of update `t` (1 for the first) at rate `lr`, with
    /// `scalars` already advanced to `t`. `decay` is the tensor's: coupled, and
    /// decoupled for the rules that have it (which ignore their own `weight_decay`
    /// field here).
    pub(crate) fn params(
        &self,
        t: u64,
        lr: f64,
        decay: Decay,
        scalars: StepScalars,
        len: u32,
    ) -> OptimizerParams {
        let tf = t as f64;
        let base = |kind| OptimizerParams {
            lr: f(lr),
            weight_decay: f(decay.coupled),
            ..OptimizerParams::new(kind, len)
        };
        match *self {
            Self::Sgd(a) => OptimizerParams {
                momentum: f(a.momentum),
                flags: if a.nesterov { FLAG_NESTEROV } else { 0 },
                ..base(OptimizerKind::Sgd)
            },
            Self::Adam(a) => adam_params(a, tf, lr, base(OptimizerKind::Adam)),
            Self::AdamW(a) => OptimizerParams {
                decay: f(1.0 - lr * decay.decoupled),
                ..adam_params(a.adam, tf, lr, base(OptimizerKind::Adam))
            },
            Self::RmsProp(a) => OptimizerParams {
                beta2: f(a.rho),
                one_minus_beta2: f(1.0 - a.rho),
                eps: f(a.epsilon),
                momentum: f(a.momentum),
                flags: if a.centered { FLAG_CENTERED } else { 0 },
                ..base(OptimizerKind::RmsProp)
            },
            Self::Adagrad(a) => OptimizerParams {
                lr: f(lr / (1.0 + (tf - 1.0) * a.lr_decay)),
                eps: f(a.epsilon),
                ..base(OptimizerKind::Adagrad)
            },
            Self::Nadam(a) => {
                let mu = a.beta1 * (1.0 - 0.5 * 0.96f64.powf(tf * a.momentum_decay));
                let mu_next = a.beta1 * (1.0 - 0.5 * 0.96f64.powf((tf + 1.0) * a.momentum_decay));
                let mu_product = f64::from(scalars.mu_product);
                let mu_product_next = mu_product * mu_next;
                OptimizerParams {
                    beta1: f(a.beta1),
                    one_minus_beta1: f(1.0 - a.beta1),
                    beta2: f(a.beta2),
                    one_minus_beta2: f(1.0 - a.beta2),
                    eps: f(a.epsilon),
                    coef1: f(1.0 - a.beta2.powf(tf)),
                    coef2: f(-lr * (1.0 - mu) / (1.0 - mu_product)),
                    coef3: f((-lr * mu_next) / (1.0 - mu_product_next)),
                    ..base(OptimizerKind::Nadam)
                }
            }
            Self::Lion(a) => OptimizerParams {
                beta1: f(a.beta1),
                one_minus_beta1: f(1.0 - a.beta1),
                beta2: f(a.beta2),
                one_minus_beta2: f(1.0 - a.beta2),
                decay: f(1.0 - lr * decay.decoupled),
                ..base(OptimizerKind::Lion)
            },
        }
    }
}

fn adam_params(a: Adam, t: f64, lr: f64, base: OptimizerParams) -> OptimizerParams {
    let bias_correction1 = 1.0 - a.beta1.powf(t);
    let bias_correction2 = 1.0 - a.beta2.powf(t);
    OptimizerParams {
        beta1: f(a.beta1),
        one_minus_beta1: f(1.0 - a.beta1),
        beta2: f(a.beta2),
        one_minus_beta2: f(1.0 - a.beta2),
        eps: f(a.epsilon),
        coef1: f(bias_correction2.sqrt()),
        coef2: f(-(lr / bias_correction1)),
        flags: if a.amsgrad { FLAG_AMSGRAD } else { 0 },
        ..base
    }
}
