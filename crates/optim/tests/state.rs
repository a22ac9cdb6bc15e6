//! Saving the optimizer's state mid-trajectory and restoring it into a fresh
//! optimizer continues bit for bit; state that does not fit is refused.

#![allow(clippy::unwrap_used)]

mod common;

use common::Tensors;
use kiln_kernels::Cpu;
use kiln_optim::{
    Adagrad, Adam, AdamW, Algorithm, Error, Lion, Nadam, Optimizer, RmsProp, Sgd, StepDecay,
};

fn grads(t: usize) -> Vec<Vec<f32>> {
    [12usize, 5]
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            (0..n)
                .map(|i| ((0.37 * i as f64 + 0.11 * t as f64 + k as f64).sin() * 1.5) as f32)
                .collect()
        })
        .collect()
}

fn tensors(cpu: &Cpu, values: &[Vec<f32>]) -> Tensors {
    Tensors::new(
        cpu,
        &[
            ("dense", "weight", &[3, 4], &values[0]),
            ("dense", "bias", &[5], &values[1]),
        ],
    )
}

fn algorithms() -> Vec<Algorithm> {
    vec![
        Sgd {
            momentum: 0.9,
            nesterov: true,
            ..Sgd::default()
        }
        .into(),
        Adam {
            amsgrad: true,
            ..Adam::default()
        }
        .into(),
        AdamW::pytorch().into(),
        RmsProp {
            momentum: 0.5,
            centered: true,
            ..RmsProp::default()
        }
        .into(),
        Adagrad::default().into(),
        Nadam::default().into(),
        Lion {
            weight_decay: 0.1,
            ..Lion::default()
        }
        .into(),
    ]
}

#[test]
fn a_restored_state_continues_bit_for_bit() {
    let cpu = Cpu::with_threads(1).unwrap();
    let start = vec![vec![0.25f32; 12], vec![-0.5f32; 5]];
    for algorithm in algorithms() {
        let mut a = tensors(&cpu, &start);
        let mut opt = Optimizer::new(algorithm)
            .weight_decay(1e-3)
            .clip_global_norm(2.0);
        for t in 0..10 {
            a.set_grads(&grads(t));
            opt.step(&mut a).unwrap();
        }
        let saved = opt.state(&cpu).unwrap();
        assert_eq!(saved.step, 10);
        let mut b = tensors(&cpu, &a.values());
        let mut resumed = Optimizer::new(algorithm)
            .weight_decay(1e-3)
            .clip_global_norm(2.0);
        resumed.load_state(&b, &saved).unwrap();
        assert_eq!(
            resumed.state(&cpu).unwrap(),
            saved,
            "{algorithm:?}: round trip"
        );
        for t in 10..20 {
            a.set_grads(&grads(t));
            opt.step(&mut a).unwrap();
            b.set_grads(&grads(t));
            resumed.step(&mut b).unwrap();
        }
        let (va, vb) = (a.values(), b.values());
        let bits =
            |v: &Vec<Vec<f32>>| -> Vec<u32> { v.iter().flatten().map(|x| x.to_bits()).collect() };
        assert_eq!(
            bits(&va),
            bits(&vb),
            "{algorithm:?}: resumed trajectory differs"
        );
        assert_ne!(va, start, "{algorithm:?}: nothing moved");
    }
}

#[test]
fn a_lowered_learning_rate_is_part_of_the_state() {
    let cpu = Cpu::with_threads(1).unwrap();
    let start = vec![vec![0.25f32; 12], vec![-0.5f32; 5]];
    let mut a = tensors(&cpu, &start);
    let mut opt = Optimizer::new(Adam::default());
    a.set_grads(&grads(0));
    opt.step(&mut a).unwrap();
    opt.set_learning_rate(1e-4).unwrap();
    let saved = opt.state(&cpu).unwrap();
    let mut resumed = Optimizer::new(Adam::default());
    resumed.load_state(&a, &saved).unwrap();
    assert_eq!(resumed.learning_rate(), 1e-4);
    // A schedule cannot be overridden by hand.
    let mut scheduled = Optimizer::<Cpu>::new(Sgd::default()).schedule(StepDecay {
        initial: 0.1,
        step_size: 2,
        gamma: 0.5,
    });
    assert!(scheduled.set_learning_rate(0.5).is_err());
}

#[test]
fn state_that_does_not_fit_is_refused_with_the_reason() {
    let cpu = Cpu::with_threads(1).unwrap();
    let start = vec![vec![0.25f32; 12], vec![-0.5f32; 5]];
    let mut a = tensors(&cpu, &start);
    let mut adam = Optimizer::new(Adam::default());
    a.set_grads(&grads(0));
    adam.step(&mut a).unwrap();
    let saved = adam.state(&cpu).unwrap();
    let err = Optimizer::new(Sgd::default())
        .load_state(&a, &saved)
        .unwrap_err();
    assert!(err.to_string().contains("adam"), "{err}");
    let mut renamed = saved.clone();
    renamed.tensors[0].0 = "conv1.weight.exp_avg".into();
    let err = Optimizer::new(Adam::default())
        .load_state(&a, &renamed)
        .unwrap_err();
    assert!(err.to_string().contains("dense.weight.exp_avg"), "{err}");
    let mut short = saved.clone();
    short.tensors[2].1.pop();
    let err = Optimizer::new(Adam::default())
        .load_state(&a, &short)
        .unwrap_err();
    assert!(
        matches!(err, Error::Config { .. }) && err.to_string().contains("of 5 values"),
        "{err}"
    );
    // A model with other tensors than the state was made for.
    let other = Tensors::new(&cpu, &[("fc", "weight", &[2], &[1.0, 2.0])]);
    let mut other = other;
    other.set_grads(&[vec![1.0, 1.0]]);
    let err = adam.step(&mut other).unwrap_err();
    assert!(err.to_string().contains("fc.weight"), "{err}");
}

#[test]
fn bad_hyper_parameters_are_refused_before_any_update() {
    let cpu = Cpu::with_threads(1).unwrap();
    let start = vec![vec![0.25f32; 12], vec![-0.5f32; 5]];
    let bad: Vec<(Optimizer<Cpu>, &str)> = vec![
        (
            Optimizer::new(Adam {
                beta1: 1.0,
                ..Adam::default()
            }),
            "beta1",
        ),
        (
            Optimizer::new(Sgd {
                nesterov: true,
                ..Sgd::default()
            }),
            "Nesterov",
        ),
        (
            Optimizer::new(Sgd::default()).learning_rate_fixed(-1.0),
            "learning rate must be",
        ),
        (Optimizer::new(Sgd::default()).clip_norm(0.0), "clipping"),
        (
            Optimizer::new(Sgd::default()).weight_decay(f64::NAN),
            "weight decay",
        ),
    ];
    for (mut opt, needle) in bad {
        let mut t = tensors(&cpu, &start);
        t.set_grads(&grads(0));
        let err = opt.step(&mut t).unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
        assert_eq!(t.values(), start, "{needle}: parameters changed");
    }
}
