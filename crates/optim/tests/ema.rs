//! The moving average of the weights: against its formula over trainable tensors and
//! saved state, `every` and the warm-up, swapping in and out, saving and restoring,
//! and the errors. (Against PyTorch's `AveragedModel` on a model with batch norm:
//! `crates/train/tests/ema_and_groups.rs`.)

#![allow(clippy::unwrap_used)]

mod common;

use common::Tensors;
use kiln_kernels::Cpu;
use kiln_optim::{Ema, Error};

/// Two trainable tensors and two of saved state.
fn tensors(cpu: &Cpu) -> Tensors {
    Tensors::new(
        cpu,
        &[
            ("dense", "weight", &[3, 4], &[0.0; 12]),
            ("dense", "bias", &[5], &[0.0; 5]),
        ],
    )
    .with_state("bn", "running_mean", &[0.0; 3])
    .with_state("bn", "running_var", &[1.0; 3])
}

/// The model's tensors at step `t`: trainable ones, then state.
fn at(t: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let values = |k: usize, n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((0.37 * i as f64 + 0.7 * t as f64 + k as f64).sin() * 1.5) as f32)
            .collect()
    };
    (
        vec![values(0, 12), values(1, 5)],
        vec![values(2, 3), values(3, 3)],
    )
}

fn set(model: &mut Tensors, t: usize) {
    let (params, state) = at(t);
    for (entry, v) in model.entries.iter_mut().zip(&params) {
        use kiln_kernels::Storage;
        model.cpu.upload(v, &mut entry.4).unwrap();
    }
    model.set_state(&state);
}

fn all(model: &Tensors) -> Vec<Vec<f32>> {
    let mut v = model.values();
    v.extend(model.state_values());
    v
}

/// `torch.lerp(a, b, w)` in `f32`, as PyTorch's `_foreach_lerp_` computes it.
fn lerp(a: f32, b: f32, w: f32) -> f32 {
    if w < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}

/// The averages `ema` holds, in the model's order.
fn averages(ema: &Ema<Cpu>, cpu: &Cpu) -> Vec<Vec<f32>> {
    ema.state(cpu)
        .unwrap()
        .tensors
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn the_average_copies_then_blends_every_tensor() {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut model = tensors(&cpu);
    let mut ema = Ema::new(0.9);
    let mut want: Vec<Vec<f32>> = Vec::new();
    let mut exact: Vec<Vec<f64>> = Vec::new();
    for t in 0..6 {
        set(&mut model, t);
        ema.update(&model).unwrap();
        let now = all(&model);
        if t == 0 {
            want.clone_from(&now);
            exact = now
                .iter()
                .map(|v| v.iter().map(|&x| f64::from(x)).collect())
                .collect();
        } else {
            for ((w, e), n) in want.iter_mut().zip(&mut exact).zip(&now) {
                for ((w, e), &n) in w.iter_mut().zip(e.iter_mut()).zip(n) {
                    *w = lerp(*w, n, (1.0 - 0.9f64) as f32);
                    *e = 0.9 * *e + 0.1 * f64::from(n);
                }
            }
        }
        let got = averages(&ema, &cpu);
        assert_eq!(got, want, "step {t}");
        for (g, e) in got.iter().flatten().zip(exact.iter().flatten()) {
            assert!((f64::from(*g) - e).abs() < 1e-6, "{g} against {e}");
        }
    }
    assert_eq!((ema.steps(), ema.updates()), (6, 6));
    let keys: Vec<String> = ema
        .state(&cpu)
        .unwrap()
        .tensors
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(
        keys,
        [
            "dense.weight",
            "dense.bias",
            "bn.running_mean",
            "bn.running_var"
        ]
    );
}

#[test]
fn every_skips_calls_and_the_warmup_raises_the_decay() {
    let ema = Ema::<Cpu>::new(0.999).warmup(0.75);
    assert_eq!(ema.decay_at(1), 1.0 - 2f64.powf(-0.75));
    assert!(ema.decay_at(10) < ema.decay_at(100));
    assert_eq!(ema.decay_at(1_000_000), 0.999);
    assert_eq!(Ema::<Cpu>::new(0.99).decay_at(1), 0.99);

    let cpu = Cpu::with_threads(1).unwrap();
    let mut model = tensors(&cpu);
    let mut ema = Ema::new(0.95).every(3).warmup(0.5);
    let mut want: Vec<Vec<f32>> = Vec::new();
    for t in 1..=10u64 {
        set(&mut model, t as usize);
        ema.update(&model).unwrap();
        if t % 3 != 0 {
            continue;
        }
        let now = all(&model);
        if want.is_empty() {
            want = now;
        } else {
            let w = (1.0 - 0.95f64.min(1.0 - (1.0 + t as f64).powf(-0.5))) as f32;
            for (a, n) in want.iter_mut().zip(&now) {
                for (a, &n) in a.iter_mut().zip(n) {
                    *a = lerp(*a, n, w);
                }
            }
        }
        assert_eq!(averages(&ema, &cpu), want, "call {t}");
    }
    assert_eq!((ema.steps(), ema.updates()), (10, 3));
}

#[test]
fn a_swap_exchanges_the_averages_with_the_model_and_back() {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut model = tensors(&cpu);
    let mut ema = Ema::new(0.5);
    let err = ema.swap(&mut model).unwrap_err();
    assert!(err.to_string().contains("no average"), "{err}");
    for t in 0..3 {
        set(&mut model, t);
        ema.update(&model).unwrap();
    }
    let (weights, average) = (all(&model), averages(&ema, &cpu));
    ema.swap(&mut model).unwrap();
    assert!(ema.is_swapped());
    assert_eq!(all(&model), average);
    // Nothing that needs the averages out of the model runs meanwhile.
    for err in [
        ema.update(&model).unwrap_err(),
        ema.state(&cpu).unwrap_err(),
    ] {
        assert!(err.to_string().contains("swap them back"), "{err}");
    }
    ema.swap(&mut model).unwrap();
    assert!(!ema.is_swapped());
    assert_eq!(all(&model), weights);
    assert_eq!(averages(&ema, &cpu), average);
}

#[test]
fn a_restored_average_continues_bit_for_bit() {
    let cpu = Cpu::with_threads(1).unwrap();
    let make = || Ema::new(0.97).every(2).warmup(0.75);
    let (mut a, mut b) = (tensors(&cpu), tensors(&cpu));
    let mut ema = make();
    for t in 0..5 {
        set(&mut a, t);
        ema.update(&a).unwrap();
    }
    let saved = ema.state(&cpu).unwrap();
    assert_eq!((saved.steps, saved.updates), (5, 2));
    let mut resumed = make();
    resumed.load_state(&b, &saved).unwrap();
    assert_eq!(resumed.state(&cpu).unwrap(), saved);
    for t in 5..11 {
        set(&mut a, t);
        ema.update(&a).unwrap();
        set(&mut b, t);
        resumed.update(&b).unwrap();
    }
    assert_eq!(ema.state(&cpu).unwrap(), resumed.state(&cpu).unwrap());

    // Saved before its first average, it restores fresh.
    let mut early = make();
    early.update(&a).unwrap();
    let mut fresh = make();
    fresh.load_state(&a, &early.state(&cpu).unwrap()).unwrap();
    assert_eq!((fresh.steps(), fresh.updates()), (1, 0));
}

#[test]
fn a_state_that_does_not_fit_is_refused_and_changes_nothing() {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut model = tensors(&cpu);
    let mut ema = Ema::new(0.9);
    for t in 0..2 {
        set(&mut model, t);
        ema.update(&model).unwrap();
    }
    let saved = ema.state(&cpu).unwrap();
    let mut other = Ema::new(0.99);
    other.update(&model).unwrap();
    let before = other.state(&cpu).unwrap();
    let err = other.load_state(&model, &saved).unwrap_err().to_string();
    assert!(
        err.contains("made with decay 0.9, every 1, no warm-up") && err.contains("decay 0.99"),
        "{err}"
    );
    assert_eq!(other.state(&cpu).unwrap(), before);

    let mut renamed = saved.clone();
    renamed.tensors[2].0 = "bn2.running_mean".into();
    let err = Ema::new(0.9).load_state(&model, &renamed).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Config {
                optimizer: "ema",
                ..
            }
        ) && err.to_string().contains("expected bn.running_mean"),
        "{err}"
    );
    let mut short = saved;
    short.tensors.pop();
    let err = Ema::new(0.9).load_state(&model, &short).unwrap_err();
    assert!(err.to_string().contains("holds 3 tensors"), "{err}");
}

#[test]
fn a_model_with_other_tensors_is_refused_and_nothing_is_exchanged() {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut model = tensors(&cpu);
    let mut ema = Ema::new(0.9);
    ema.update(&model).unwrap();
    let mut other = Tensors::new(&cpu, &[("fc", "weight", &[2], &[1.0, 2.0])]);
    let err = ema.update(&other).unwrap_err();
    assert!(err.to_string().contains("fc.weight"), "{err}");
    let err = ema.swap(&mut other).unwrap_err();
    assert!(err.to_string().contains("fc.weight"), "{err}");
    assert_eq!(other.values(), [vec![1.0, 2.0]]);
    assert!(!ema.is_swapped());
    assert_eq!(ema.updates(), 1);
    model.state.pop();
    let err = ema.update(&model).unwrap_err();
    assert!(
        err.to_string().contains("3 tensors but the average 4"),
        "{err}"
    );
}

#[test]
fn bad_settings_are_refused_at_the_first_update() {
    let cpu = Cpu::with_threads(1).unwrap();
    let model = tensors(&cpu);
    for (mut ema, needle) in [
        (Ema::new(1.5), "decay"),
        (Ema::new(0.9).every(0), "every"),
        (Ema::new(0.9).warmup(-1.0), "warm-up"),
    ] {
        let err = ema.update(&model).unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
        assert_eq!(ema.updates(), 0);
    }
}
