//! Optimizer updates: one fused pass over a parameter tensor, its gradient and the
//! optimizer's state for it.
//!
//! The host works out every per-step scalar (learning rate, bias corrections, clipping
//! factor) in `f64` and hands them over as `f32`, the way PyTorch passes Python floats
//! to its kernels; the kernel does the element-wise arithmetic in the same order as
//! `torch.optim`'s single-tensor code, so trajectories agree to rounding.
//!
//! The gradient is first prepared: multiplied by [`OptimizerParams::grad_scale`]
//! (clipping by norm), clamped to `±clip_value` (clipping by value), and then
//! `weight_decay * param` is added (coupled L2 decay). Decoupled decay multiplies the
//! parameter by [`OptimizerParams::decay`] before the update.

mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use crate::Result;
use crate::storage::Storage;

/// Which update rule; the numbering is shared with the GPU kernels.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// `p -= lr * g`, with momentum (`buf = momentum * buf + g`) and Nesterov's
    /// variant. State: `[momentum_buffer]` when `momentum > 0`, else none.
    Sgd = 0,
    /// Adam. State: `[exp_avg, exp_avg_sq]`, plus `max_exp_avg_sq` with AMSGrad.
    /// `coef1` is `sqrt(1 - beta2^t)`, `coef2` is `-lr / (1 - beta1^t)`.
    Adam = 1,
    /// RMSprop with `beta2` as its `rho`. State: `[square_avg]`, then
    /// `momentum_buffer` when `momentum > 0`, then `grad_avg` when centered.
    RmsProp = 2,
    /// Adagrad with `lr` the decayed rate. State: `[sum]`.
    Adagrad = 3,
    /// Nadam. State: `[exp_avg, exp_avg_sq]`. `coef1` is `1 - beta2^t`; `coef2` and
    /// `coef3` multiply the gradient's and the average's steps.
    Nadam = 4,
    /// Lion: `p -= lr * sign(beta1 * m + (1 - beta1) * g)`, then
    /// `m = beta2 * m + (1 - beta2) * g`. State: `[exp_avg]`.
    Lion = 5,
}

/// [`OptimizerParams::flags`]: Nesterov momentum (SGD).
pub const FLAG_NESTEROV: u32 = 1;
/// [`OptimizerParams::flags`]: AMSGrad (Adam).
pub const FLAG_AMSGRAD: u32 = 2;
/// [`OptimizerParams::flags`]: centered second moment (RMSprop).
pub const FLAG_CENTERED: u32 = 4;

/// One update of one tensor of `len` values.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerParams {
    /// Which rule.
    pub kind: OptimizerKind,
    /// Values in the tensor.
    pub len: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Multiplies the gradient first (clipping by norm); 1 for none.
    pub grad_scale: f32,
    /// Clamps the scaled gradient to `±clip_value`; infinite for none.
    pub clip_value: f32,
    /// Coupled (L2) decay: `g += weight_decay * p`.
    pub weight_decay: f32,
    /// Decoupled decay: `p *= decay` before the update; 1 for none.
    pub decay: f32,
    /// The learning rate of this step.
    pub lr: f32,
    /// First-moment decay (`beta1`; SGD and RMSprop: unused).
    pub beta1: f32,
    /// Second-moment decay (`beta2`, RMSprop's `rho`).
    pub beta2: f32,
    /// `1 - beta1`, computed in `f64` by the host.
    pub one_minus_beta1: f32,
    /// `1 - beta2`, computed in `f64` by the host.
    pub one_minus_beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Momentum (SGD, RMSprop).
    pub momentum: f32,
    /// Rule-specific step coefficients (see [`OptimizerKind`]).
    pub coef1: f32,
    /// Rule-specific step coefficients (see [`OptimizerKind`]).
    pub coef2: f32,
    /// Rule-specific step coefficients (see [`OptimizerKind`]).
    pub coef3: f32,
}

impl OptimizerParams {
    /// Parameters of `kind` over `len` values with every option off.
    pub fn new(kind: OptimizerKind, len: u32) -> Self {
        Self {
            kind,
            len,
            flags: 0,
            grad_scale: 1.0,
            clip_value: f32::INFINITY,
            weight_decay: 0.0,
            decay: 1.0,
            lr: 0.0,
            beta1: 0.0,
            beta2: 0.0,
            one_minus_beta1: 1.0,
            one_minus_beta2: 1.0,
            eps: 0.0,
            momentum: 0.0,
            coef1: 0.0,
            coef2: 0.0,
            coef3: 0.0,
        }
    }

    /// Whether flag `bit` is set.
    pub fn has(&self, bit: u32) -> bool {
        self.flags & bit != 0
    }

    /// State values the rule keeps for each parameter value.
    pub fn slots(&self) -> usize {
        match self.kind {
            OptimizerKind::Sgd => usize::from(self.momentum != 0.0),
            OptimizerKind::Adam => 2 + usize::from(self.has(FLAG_AMSGRAD)),
            OptimizerKind::RmsProp => {
                1 + usize::from(self.momentum > 0.0) + usize::from(self.has(FLAG_CENTERED))
            }
            OptimizerKind::Adagrad | OptimizerKind::Lion => 1,
            OptimizerKind::Nadam => 2,
        }
    }
}

/// The optimizer-update op.
pub trait OptimizerKernel: Storage {
    /// Updates `param` in place from `grad`, reading and writing `state`, which holds
    /// [`OptimizerParams::slots`] consecutive runs of `len` values.
    fn optimizer_step(
        &self,
        p: &OptimizerParams,
        param: &mut Self::Buffer,
        grad: &Self::Buffer,
        state: &mut Self::Buffer,
    ) -> Result<()>;

    /// The updates of several tensors, each as [`OptimizerKernel::optimizer_step`]
    /// would make it. A GPU makes up to eight in one launch, so that a model's many
    /// small tensors do not each pay for one; the CPU makes them one after another.
    fn optimizer_step_many<'a>(
        &self,
        steps: impl IntoIterator<Item = OptimizerStep<'a, Self>>,
    ) -> Result<()>
    where
        Self: 'a,
    {
        for s in steps {
            self.optimizer_step(&s.params, s.param, s.grad, s.state)?;
        }
        Ok(())
    }
}

/// One tensor's update for [`OptimizerKernel::optimizer_step_many`].
#[derive(Debug)]
pub struct OptimizerStep<'a, B: Storage> {
    /// The rule and this step's scalars for the tensor.
    pub params: OptimizerParams,
    /// The tensor.
    pub param: &'a mut B::Buffer,
    /// Its gradient.
    pub grad: &'a B::Buffer,
    /// The rule's state for it.
    pub state: &'a mut B::Buffer,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;

    /// One Adam step by hand, in `f64`, against the kernel on a tensor long enough to
    /// take the parallel path.
    fn check_adam<B: OptimizerKernel>(backend: &B) {
        let len = 70_001;
        let param: Vec<f32> = (0..len).map(|i| (i as f32 * 0.001).sin()).collect();
        let grad: Vec<f32> = (0..len).map(|i| (i as f32 * 0.0007).cos()).collect();
        let (lr, b1, b2, eps) = (1e-3f64, 0.9f64, 0.999f64, 1e-8f64);
        let p = OptimizerParams {
            lr: lr as f32,
            beta1: b1 as f32,
            beta2: b2 as f32,
            one_minus_beta1: (1.0 - b1) as f32,
            one_minus_beta2: (1.0 - b2) as f32,
            eps: eps as f32,
            coef1: (1.0 - b2).sqrt() as f32,
            coef2: (-lr / (1.0 - b1)) as f32,
            ..OptimizerParams::new(OptimizerKind::Adam, len as u32)
        };
        let mut pb = backend.alloc_from(&param).unwrap();
        let gb = backend.alloc_from(&grad).unwrap();
        let mut sb = backend.alloc(2 * len).unwrap();
        backend.optimizer_step(&p, &mut pb, &gb, &mut sb).unwrap();
        let got = backend.to_host(&pb, len).unwrap();
        let state = backend.to_host(&sb, 2 * len).unwrap();
        for i in (0..len).step_by(997) {
            let g = f64::from(grad[i]);
            let (m, v) = ((1.0 - b1) * g, (1.0 - b2) * g * g);
            let want =
                f64::from(param[i]) - lr / (1.0 - b1) * m / (v.sqrt() / (1.0 - b2).sqrt() + eps);
            assert!((f64::from(got[i]) - want).abs() < 1e-6, "param {i}");
            assert!(
                (f64::from(state[i]) - m).abs() < 1e-6 * m.abs().max(1e-3),
                "m {i}"
            );
            assert!(
                (f64::from(state[len + i]) - v).abs() < 1e-5 * v.max(1e-9),
                "v {i}"
            );
        }
        // A state buffer one slot short is refused.
        let mut short = backend.alloc(len).unwrap();
        assert!(
            backend
                .optimizer_step(&p, &mut pb, &gb, &mut short)
                .is_err()
        );
    }

    #[test]
    fn adam_matches_the_formula_on_cpu() {
        check_adam(&Cpu::with_threads(2).unwrap());
    }

    #[test]
    fn slots_follow_the_options() {
        let sgd = OptimizerParams::new(OptimizerKind::Sgd, 1);
        assert_eq!(sgd.slots(), 0);
        assert_eq!(
            OptimizerParams {
                momentum: 0.9,
                ..sgd
            }
            .slots(),
            1
        );
        let adam = OptimizerParams::new(OptimizerKind::Adam, 1);
        assert_eq!(
            OptimizerParams {
                flags: FLAG_AMSGRAD,
                ..adam
            }
            .slots(),
            3
        );
        let rms = OptimizerParams::new(OptimizerKind::RmsProp, 1);
        let all = OptimizerParams {
            momentum: 0.5,
            flags: FLAG_CENTERED,
            ..rms
        };
        assert_eq!(all.slots(), 3);
    }

    /// Several tensors at once give what each gives alone, bit for bit: eleven
    /// tensors (a group of eight and one of three on a GPU), one of them empty, with
    /// different rules and lengths.
    fn check_many<B: OptimizerKernel>(backend: &B) {
        let lens = [1, 300, 0, 70_001, 5, 4096, 77, 1, 2, 1000, 33];
        let params: Vec<OptimizerParams> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let kind = [
                    OptimizerKind::Adam,
                    OptimizerKind::Sgd,
                    OptimizerKind::RmsProp,
                ][i % 3];
                OptimizerParams {
                    lr: 0.01 * (i + 1) as f32,
                    beta1: 0.9,
                    beta2: 0.99,
                    one_minus_beta1: 0.1,
                    one_minus_beta2: 0.01,
                    eps: 1e-7,
                    momentum: 0.5,
                    coef1: 0.1,
                    coef2: -0.1,
                    ..OptimizerParams::new(kind, len as u32)
                }
            })
            .collect();
        let make = |seed: u64| -> Vec<(B::Buffer, B::Buffer, B::Buffer)> {
            lens.iter()
                .zip(&params)
                .enumerate()
                .map(|(i, (&len, p))| {
                    let mut rng = crate::rng::Rng::new(seed + i as u64);
                    let mut values = |n: usize| -> Vec<f32> {
                        (0..n).map(|_| rng.uniform_in(-1.0, 1.0)).collect()
                    };
                    let (w, g) = (values(len), values(len));
                    let s: Vec<f32> = values(p.slots() * len).iter().map(|v| v.abs()).collect();
                    (
                        backend.alloc_from(&w).unwrap(),
                        backend.alloc_from(&g).unwrap(),
                        backend.alloc_from(&s).unwrap(),
                    )
                })
                .collect()
        };
        let (mut one, mut many) = (make(7), make(7));
        for ((w, g, s), p) in one.iter_mut().zip(&params) {
            backend.optimizer_step(p, w, g, s).unwrap();
        }
        backend
            .optimizer_step_many(
                many.iter_mut()
                    .zip(&params)
                    .map(|((w, g, s), p)| OptimizerStep {
                        params: *p,
                        param: w,
                        grad: g,
                        state: s,
                    }),
            )
            .unwrap();
        for (i, ((a, _, sa), (b, _, sb))) in one.iter().zip(&many).enumerate() {
            let (len, slots) = (lens[i], params[i].slots() * lens[i]);
            assert_eq!(
                backend.to_host(a, len).unwrap(),
                backend.to_host(b, len).unwrap(),
                "{i}"
            );
            assert_eq!(
                backend.to_host(sa, slots).unwrap(),
                backend.to_host(sb, slots).unwrap(),
                "state {i}"
            );
        }
    }

    #[test]
    fn many_tensors_at_once_match_one_by_one_on_cpu() {
        check_many(&Cpu::with_threads(2).unwrap());
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn many_tensors_at_once_match_one_by_one_on_cuda() {
        if let Some(gpu) = crate::cuda::test_device() {
            check_many(&gpu);
        }
    }

    /// While a check's finding waits on the GPU, updates skip; once the host has taken
    /// it, they run again.
    #[cfg(feature = "cuda")]
    #[test]
    fn updates_skip_while_an_error_is_pending_on_cuda() {
        use crate::ops::reduce::ReduceKernel;
        let Some(gpu) = crate::cuda::test_device() else {
            return;
        };
        let p = OptimizerParams {
            lr: 0.5,
            ..OptimizerParams::new(OptimizerKind::Sgd, 3)
        };
        let mut param = gpu.alloc_from(&[1.0, 2.0, 3.0]).unwrap();
        let grad = gpu.alloc_from(&[1.0, 1.0, 1.0]).unwrap();
        let mut state = gpu.alloc(1).unwrap();
        let bad = gpu.alloc_from(&[0.0, f32::NAN]).unwrap();
        gpu.check_finite(&bad, 2).unwrap();
        gpu.optimizer_step(&p, &mut param, &grad, &mut state)
            .unwrap();
        assert_eq!(gpu.to_host(&param, 3).unwrap(), [1.0, 2.0, 3.0]);
        assert!(gpu.check_errors().is_err());
        gpu.optimizer_step(&p, &mut param, &grad, &mut state)
            .unwrap();
        assert_eq!(gpu.to_host(&param, 3).unwrap(), [0.5, 1.5, 2.5]);
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn adam_matches_the_formula_on_cuda() {
        if let Some(gpu) = crate::cuda::test_device() {
            check_adam(&gpu);
        }
    }

    /// The GPU against the CPU, bit for bit (no FMA contraction on either side), for
    /// every rule and option, over three steps.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_matches_cpu_bit_for_bit() {
        use crate::cuda::parity::random;
        let Some(gpu) = crate::cuda::test_device() else {
            return;
        };
        let cpu = Cpu::with_threads(2).unwrap();
        let base = |kind| OptimizerParams {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.99,
            one_minus_beta1: 0.1,
            one_minus_beta2: 0.01,
            eps: 1e-7,
            coef1: 0.3,
            coef2: -0.02,
            coef3: -0.01,
            grad_scale: 0.7,
            clip_value: 0.5,
            ..OptimizerParams::new(kind, 0)
        };
        let cases = [
            base(OptimizerKind::Sgd),
            OptimizerParams {
                momentum: 0.9,
                flags: FLAG_NESTEROV,
                ..base(OptimizerKind::Sgd)
            },
            OptimizerParams {
                weight_decay: 1e-2,
                ..base(OptimizerKind::Adam)
            },
            OptimizerParams {
                flags: FLAG_AMSGRAD,
                decay: 0.999,
                ..base(OptimizerKind::Adam)
            },
            base(OptimizerKind::RmsProp),
            OptimizerParams {
                momentum: 0.5,
                flags: FLAG_CENTERED,
                ..base(OptimizerKind::RmsProp)
            },
            base(OptimizerKind::Adagrad),
            base(OptimizerKind::Nadam),
            base(OptimizerKind::Lion),
        ];
        for len in [1usize, 1_000, 70_001] {
            let param = random(len, 11, 1.0);
            let grads = [
                random(len, 12, 2.0),
                random(len, 13, 2.0),
                random(len, 14, 2.0),
            ];
            for case in cases {
                let p = OptimizerParams {
                    len: len as u32,
                    ..case
                };
                let slots = p.slots();
                let (mut pc, mut sc) = (
                    cpu.alloc_from(&param).unwrap(),
                    cpu.alloc(slots * len).unwrap(),
                );
                let (mut pg, mut sg) = (
                    gpu.alloc_from(&param).unwrap(),
                    gpu.alloc(slots * len).unwrap(),
                );
                for g in &grads {
                    cpu.optimizer_step(&p, &mut pc, &cpu.alloc_from(g).unwrap(), &mut sc)
                        .unwrap();
                    gpu.optimizer_step(&p, &mut pg, &gpu.alloc_from(g).unwrap(), &mut sg)
                        .unwrap();
                }
                let what = format!("{:?} flags {} len {len}", p.kind, p.flags);
                assert_eq!(
                    cpu.to_host(&pc, len).unwrap(),
                    gpu.to_host(&pg, len).unwrap(),
                    "{what}: param"
                );
                assert_eq!(
                    cpu.to_host(&sc, slots * len).unwrap(),
                    gpu.to_host(&sg, slots * len).unwrap(),
                    "{what}: state"
                );
            }
        }
    }
}
