//! Every optimizer, clipping mode and schedule, and parameter groups, against
//! `torch.optim`: 25 updates of two tensors with fixed gradients, every value to 1e-6
//! relative.
//!
//! The trajectories come from `oracle/pytorch_optim.py`, kept beside the generated
//! `oracle/pytorch_optim.json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Tensors;
use kiln_kernels::Cpu;
use kiln_optim::{
    Adagrad, Adam, AdamW, Algorithm, CosineDecay, ExponentialDecay, Lion, Monitor, Nadam, OneCycle,
    Optimizer, ParamGroup, PolynomialDecay, ReduceLrOnPlateau, RmsProp, Schedule, Sgd, StepDecay,
};
use serde_json::Value;

const ORACLE: &str = include_str!("oracle/pytorch_optim.json");

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn num(cfg: &Value, key: &str, default: f64) -> f64 {
    cfg.get(key).and_then(Value::as_f64).unwrap_or(default)
}

fn algorithm(cfg: &Value) -> Algorithm {
    let lr = num(cfg, "lr", 0.0);
    let eps = num(cfg, "eps", 1e-8);
    let flag = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(false);
    let adam = Adam {
        learning_rate: lr,
        beta1: num(cfg, "beta1", 0.9),
        beta2: num(cfg, "beta2", 0.999),
        epsilon: eps,
        amsgrad: flag("amsgrad"),
    };
    match cfg["algorithm"].as_str().unwrap() {
        "sgd" => Sgd {
            learning_rate: lr,
            momentum: num(cfg, "momentum", 0.0),
            nesterov: flag("nesterov"),
        }
        .into(),
        "adam" => adam.into(),
        "adamw" => AdamW {
            adam,
            weight_decay: num(cfg, "decoupled_weight_decay", 0.0),
        }
        .into(),
        "rmsprop" => RmsProp {
            learning_rate: lr,
            rho: num(cfg, "rho", 0.99),
            momentum: num(cfg, "momentum", 0.0),
            epsilon: eps,
            centered: flag("centered"),
        }
        .into(),
        "adagrad" => Adagrad {
            learning_rate: lr,
            initial_accumulator: num(cfg, "initial_accumulator", 0.0),
            epsilon: eps,
            lr_decay: num(cfg, "lr_decay", 0.0),
        }
        .into(),
        "nadam" => Nadam {
            learning_rate: lr,
            epsilon: eps,
            ..Nadam::pytorch()
        }
        .into(),
        "lion" => Lion {
            learning_rate: lr,
            weight_decay: num(cfg, "decoupled_weight_decay", 0.0),
            ..Lion::default()
        }
        .into(),
        other => panic!("unknown algorithm {other}"),
    }
}

/// The schedules of the script, with the same numbers.
fn schedule(name: &str) -> Option<Box<dyn Schedule>> {
    Some(match name {
        "step" => Box::new(StepDecay {
            initial: 1.0,
            step_size: 5,
            gamma: 0.5,
        }),
        "exponential" => Box::new(ExponentialDecay {
            initial: 1.0,
            decay_rate: 0.9,
            decay_steps: 1,
            staircase: false,
        }),
        "polynomial" => Box::new(PolynomialDecay {
            initial: 1.0,
            end: 0.0,
            decay_steps: 15,
            power: 2.0,
        }),
        "cosine_warmup" => Box::new(CosineDecay {
            warmup_start: 0.05,
            peak: 0.5,
            warmup_steps: 5,
            decay_steps: 20,
            end: 1e-3,
        }),
        "one_cycle" => Box::new(OneCycle::new(0.5, 25)),
        _ => return None,
    })
}

#[derive(Debug)]
struct Boxed(Box<dyn Schedule>);

impl Schedule for Boxed {
    fn learning_rate(&self, step: u64) -> f64 {
        self.0.learning_rate(step)
    }
}

fn optimizer(case: &Value) -> Optimizer<Cpu> {
    let cfg = &case["kiln"];
    let mut opt = Optimizer::new(algorithm(cfg)).weight_decay(num(cfg, "weight_decay", 0.0));
    if let Some(s) = cfg
        .get("schedule")
        .and_then(Value::as_str)
        .and_then(schedule)
    {
        opt = opt.schedule(Boxed(s));
    }
    for group in cfg
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let names = group["names"].as_array().unwrap().iter();
        let mut g = ParamGroup::new()
            .names(names.map(|n| n.as_str().unwrap()))
            .learning_rate_scale(num(group, "learning_rate_scale", 1.0));
        if let Some(wd) = group.get("weight_decay").and_then(Value::as_f64) {
            g = g.weight_decay(wd);
        }
        opt = opt.group(g);
    }
    if let Some(clip) = case["clip"].as_array() {
        let bound = clip[1].as_f64().unwrap();
        opt = match clip[0].as_str().unwrap() {
            "value" => opt.clip_value(bound),
            "norm" => opt.clip_norm(bound),
            "global_norm" => opt.clip_global_norm(bound),
            other => panic!("unknown clipping {other}"),
        };
    }
    opt
}

/// 1e-6 relative to the value, or to the tensors' scale (about 1) where a value
/// crosses zero: there float32 rounding of earlier steps dominates any relative
/// measure.
fn close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-6 * want.abs().max(1.0),
        "{what}: kiln {got}, PyTorch {want}"
    );
}

#[test]
fn every_optimizer_and_schedule_follows_pytorch() {
    let oracle: Value = serde_json::from_str(ORACLE).unwrap();
    let cpu = Cpu::with_threads(1).unwrap();
    let initial: Vec<Vec<f32>> = oracle["initial"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    let grads: Vec<Vec<Vec<f32>>> = oracle["grads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step.as_array().unwrap().iter().map(floats).collect())
        .collect();
    let cases = oracle["cases"].as_array().unwrap();
    assert!(cases.len() >= 28, "the oracle lost cases");
    let grouped = cases.iter().filter(|c| c["kiln"].get("groups").is_some());
    assert_eq!(grouped.count(), 5, "the oracle lost its cases of groups");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut tensors = Tensors::new(
            &cpu,
            &[
                ("dense", "weight", &[3, 4], &initial[0]),
                ("dense", "bias", &[5], &initial[1]),
            ],
        );
        let mut opt = optimizer(case);
        let mut plateau = ReduceLrOnPlateau::new(Monitor::Min);
        plateau.factor = 0.5;
        plateau.patience = 2;
        plateau.threshold = 1e-2;
        plateau.cooldown = 1;
        let lrs = case["lrs"].as_array().unwrap();
        let trajectory = case["trajectory"].as_array().unwrap();
        assert_eq!(lrs.len(), 25, "{name}: at least 20 steps");
        for (t, (lr, want)) in lrs.iter().zip(trajectory).enumerate() {
            let (got_lr, want_lr) = (opt.learning_rate(), lr.as_f64().unwrap());
            assert!(
                (got_lr - want_lr).abs() <= 1e-9 * want_lr.abs() + 1e-15,
                "{name}: lr of step {t}: kiln {got_lr}, PyTorch {want_lr}"
            );
            tensors.set_grads(&grads[t]);
            opt.step(&mut tensors).unwrap();
            for (k, (got, want)) in tensors
                .values()
                .iter()
                .zip(want.as_array().unwrap())
                .enumerate()
            {
                for (i, (g, w)) in got.iter().zip(floats(want)).enumerate() {
                    close(
                        &format!("{name}: step {t}, tensor {k}[{i}]"),
                        f64::from(*g),
                        f64::from(w),
                    );
                }
            }
            if let Some(values) = case["plateau"].as_array() {
                let lr = plateau.observe(values[t].as_f64().unwrap(), opt.learning_rate());
                opt.set_learning_rate(lr).unwrap();
            }
        }
    }
}
