//! Builder methods for the optimizers' and schedules' options, so that a user writes
//! `Adam::default().learning_rate(1e-2)` as Keras and PyTorch take keyword arguments.
//! The fields stay public; the builders are what the docs show.

use crate::algorithm::{Adagrad, Adam, AdamW, Lion, Nadam, RmsProp, Sgd};
use crate::schedule::{
    Anneal, CosineDecay, ExponentialDecay, OneCycle, PolynomialDecay, ReduceLrOnPlateau, StepDecay,
    Threshold,
};

/// One method per field: `name(value)` returns the value with that field set.
macro_rules! setters {
    ($ty:ident { $($field:ident: $t:ty),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("The same `", stringify!($ty), "` with `", stringify!($field), "` set.")]
                #[must_use]
                pub fn $field(mut self, $field: $t) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
}

setters!(Sgd {
    learning_rate: f64,
    momentum: f64,
    nesterov: bool
});
setters!(Adam {
    learning_rate: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    amsgrad: bool
});
setters!(RmsProp {
    learning_rate: f64,
    rho: f64,
    momentum: f64,
    epsilon: f64,
    centered: bool
});
setters!(Adagrad {
    learning_rate: f64,
    initial_accumulator: f64,
    epsilon: f64,
    lr_decay: f64
});
setters!(Nadam {
    learning_rate: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    momentum_decay: f64
});
setters!(Lion {
    learning_rate: f64,
    beta1: f64,
    beta2: f64,
    weight_decay: f64
});
setters!(AdamW { weight_decay: f64 });

/// AdamW's Adam options, set on the Adam inside.
macro_rules! adam_setters {
    ($($field:ident: $t:ty),*) => {
        impl AdamW {
            $(
                #[doc = concat!("The same `AdamW` with Adam's `", stringify!($field), "` set.")]
                #[must_use]
                pub fn $field(mut self, $field: $t) -> Self {
                    self.adam.$field = $field;
                    self
                }
            )*
        }
    };
}

adam_setters!(learning_rate: f64, beta1: f64, beta2: f64, epsilon: f64, amsgrad: bool);

setters!(StepDecay { gamma: f64 });
setters!(ExponentialDecay { staircase: bool });
setters!(PolynomialDecay {
    end: f64,
    power: f64
});
setters!(CosineDecay {
    warmup_start: f64,
    warmup_steps: u64,
    end: f64
});
setters!(OneCycle {
    pct_start: f64,
    div_factor: f64,
    final_div_factor: f64,
    anneal: Anneal
});
setters!(ReduceLrOnPlateau {
    factor: f64,
    patience: u32,
    threshold: f64,
    threshold_mode: Threshold,
    cooldown: u32,
    min_lr: f64,
    eps: f64,
});

impl StepDecay {
    /// `initial`, multiplied by 0.1 every `step_size` steps (PyTorch's `StepLR`
    /// default `gamma`).
    pub fn new(initial: f64, step_size: u64) -> Self {
        Self {
            initial,
            step_size,
            gamma: 0.1,
        }
    }
}

impl ExponentialDecay {
    /// `initial`, multiplied by `decay_rate` over every `decay_steps` steps, smoothly.
    pub fn new(initial: f64, decay_rate: f64, decay_steps: u64) -> Self {
        Self {
            initial,
            decay_rate,
            decay_steps,
            staircase: false,
        }
    }
}

impl PolynomialDecay {
    /// From `initial` down to 0.0001 along a straight line over `decay_steps`
    /// (Keras's defaults: `end_learning_rate` 1e-4, `power` 1).
    pub fn new(initial: f64, decay_steps: u64) -> Self {
        Self {
            initial,
            end: 1e-4,
            decay_steps,
            power: 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Schedule;

    #[test]
    fn builders_set_the_fields_that_struct_literals_set() {
        let adam = Adam::default().learning_rate(1e-2).amsgrad(true);
        assert_eq!(
            adam,
            Adam {
                learning_rate: 1e-2,
                amsgrad: true,
                ..Adam::default()
            }
        );
        let adamw = AdamW::default().learning_rate(3e-4).weight_decay(0.05);
        assert_eq!((adamw.adam.learning_rate, adamw.weight_decay), (3e-4, 0.05));
        let sgd = Sgd::default()
            .learning_rate(0.1)
            .momentum(0.9)
            .nesterov(true);
        assert_eq!(
            sgd,
            Sgd {
                learning_rate: 0.1,
                momentum: 0.9,
                nesterov: true
            }
        );
        let schedule = ExponentialDecay::new(1e-2, 0.5, 100).staircase(true);
        assert_eq!(schedule.learning_rate(250), 2.5e-3);
        let cycle = OneCycle::new(0.2, 1000)
            .pct_start(0.25)
            .anneal(Anneal::Linear);
        assert_eq!((cycle.pct_start, cycle.anneal), (0.25, Anneal::Linear));
        assert_eq!(StepDecay::new(1.0, 10).gamma(0.5).learning_rate(20), 0.25);
    }
}
