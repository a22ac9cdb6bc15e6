//! The learning-rate range test on real digits: its suggestion against the rate that
//! trains best (found by brute force in the test), the weights and optimizer state
//! it puts back, its plot, and its suggestion rules against fastai's, which
//! `tune/lr_find_oracle.py` runs on curves kiln recorded (`tune/lr_find_curves.json`).
//!
//! To record the curves again (after a change to the sweep):
//!
//! ```text
//! cargo test -p kiln-train --test lr_find -- --ignored record_curves_for_the_oracle
//! python3 crates/train/tests/tune/lr_find_oracle.py \
//!     target/tmp/lr_find_recorded.json crates/train/tests/tune/lr_find_curves.json
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kiln::data::InMemory;
use kiln::prelude::*;
use kiln::train::Weights;
use kiln::train::tune::{LrFind, LrFindOptions, Suggestion};

kiln::model! {
    /// A small CNN for the 28x28 digits.
    pub struct Small {
        input: [28, 28, 1],
        conv: Conv2d(filters = 8, kernel = 3, stride = 2, activation = relu),
        pool: MaxPool2d(2),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

fn digits() -> InMemory {
    let (train, _) = kiln::data::mnist::embedded().unwrap();
    train.select(&(0..3200).collect::<Vec<_>>()).unwrap()
}

fn scale() -> Pipeline {
    Pipeline::new().scale(1.0 / 255.0)
}

fn trainer(lr: f64) -> Trainer<Cpu, Small> {
    let cpu = Cpu::with_threads(2).unwrap();
    Trainer::new(
        Small::new(&cpu, 32, 0).unwrap(),
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()).learning_rate_fixed(lr),
    )
    .unwrap()
}

#[test]
fn the_suggestion_is_within_3x_of_the_rate_that_trains_best() {
    let found = trainer(1e-3)
        .lr_find(digits(), &LrFindOptions::new(32).pipeline(scale()))
        .unwrap();
    let suggested = found.suggestion().unwrap();
    // The oracle: train 3 epochs at each rate of a grid (4 a decade) from the same
    // initial weights, and keep the rate of the lowest loss after training.
    let mut best = (f64::INFINITY, 0.0);
    for k in 0..11 {
        let lr = 10f64.powf(-3.0 + f64::from(k) / 4.0);
        let mut t = trainer(lr);
        let fit = FitOptions::new(3, 32)
            .pipeline(scale())
            .verbose(Verbosity::Silent);
        if t.fit(digits(), fit).is_err() {
            continue;
        }
        let loss = t
            .evaluate(digits(), 32, &scale())
            .unwrap()
            .get("loss")
            .unwrap();
        if loss < best.0 {
            best = (loss, lr);
        }
    }
    let ratio = suggested / best.1;
    println!(
        "suggested {suggested:.3e}, best {:.3e} (loss {:.3})",
        best.1, best.0
    );
    assert!(
        (1.0 / 3.0..=3.0).contains(&ratio),
        "suggested {suggested:.3e}, best {:.3e}",
        best.1
    );
}

#[test]
fn weights_and_optimizer_state_are_put_back() {
    let mut t = trainer(1e-3);
    // Some Adam state first, so that there is state to put back.
    let fit = FitOptions::new(1, 32)
        .pipeline(scale())
        .verbose(Verbosity::Silent);
    t.fit(digits().select(&(0..256).collect::<Vec<_>>()).unwrap(), fit)
        .unwrap();
    let cpu = t.model().backend().clone();
    let (weights, state) = (
        Weights::of(t.model()).unwrap(),
        t.optimizer().state(&cpu).unwrap(),
    );
    let found = t
        .lr_find(digits(), &LrFindOptions::new(32).pipeline(scale()))
        .unwrap();
    assert!(found.losses.len() > 50, "{} steps", found.losses.len());
    assert_eq!(Weights::of(t.model()).unwrap(), weights);
    assert_eq!(t.optimizer().state(&cpu).unwrap(), state);
    assert_eq!(t.optimizer().learning_rate(), 1e-3);
    // The rates grow as fastai's: start * (end / start)^(i / steps).
    let want = 1e-7 * 1e8f64.powf(10.0 / 100.0);
    assert!((found.learning_rates[10] / want - 1.0).abs() < 1e-12);
}

#[test]
fn a_diverging_sweep_stops_and_still_puts_everything_back() {
    let mut t = trainer(1e-3);
    let weights = Weights::of(t.model()).unwrap();
    // From rates far too high: the loss blows up (or turns non-finite) at once.
    let options = LrFindOptions::new(32).pipeline(scale()).range(1.0, 1e4);
    let found = t.lr_find(digits(), &options).unwrap();
    assert!(found.diverged && found.losses.len() < 100, "{found:?}");
    assert_eq!(Weights::of(t.model()).unwrap(), weights);
}

#[test]
fn a_scheduled_optimizer_or_an_average_is_refused() {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut t = Trainer::new(
        Small::new(&cpu, 32, 0).unwrap(),
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()).schedule(CosineDecay::new(1e-3, 100)),
    )
    .unwrap();
    let weights = Weights::of(t.model()).unwrap();
    let e = t.lr_find(digits(), &LrFindOptions::new(32)).unwrap_err();
    assert!(e.to_string().contains("schedule"), "{e}");
    assert_eq!(Weights::of(t.model()).unwrap(), weights);
    let mut t = trainer(1e-3).ema(Ema::new(0.99));
    let e = t.lr_find(digits(), &LrFindOptions::new(32)).unwrap_err();
    assert!(e.to_string().contains("moving average"), "{e}");
}

#[cfg(feature = "plots")]
#[test]
fn the_plot_is_a_png() {
    let found = trainer(1e-3)
        .lr_find(
            digits(),
            &LrFindOptions::new(32).pipeline(scale()).steps(40),
        )
        .unwrap();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lr_find.png");
    found.plot(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "{} bytes", bytes.len());
    let e = found.plot(path.with_extension("jpg")).unwrap_err();
    assert!(e.to_string().contains(".png"), "{e}");
}

#[test]
fn suggestions_match_fastai_on_recorded_curves() {
    let text = include_str!("tune/lr_find_curves.json");
    let curves: serde_json::Value = serde_json::from_str(text).unwrap();
    let numbers = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let mut checked = 0;
    for curve in curves["curves"].as_array().unwrap() {
        let name = curve["name"].as_str().unwrap();
        let steps = curve["steps"].as_u64().unwrap() as usize;
        // fastai's defaults (smoothing 0.98, stop at 4x the best) over `steps`.
        let found = LrFind::from_raw(
            &numbers(&curve["learning_rates"]),
            &numbers(&curve["raw_losses"]),
            &LrFindOptions::new(32).steps(steps),
        );
        let expected = &curve["expected"];
        assert_eq!(
            found.losses.len() as u64,
            expected["recorded"].as_u64().unwrap(),
            "{name}"
        );
        for (rule, key) in [
            (Suggestion::Valley, "valley"),
            (Suggestion::Minimum, "minimum"),
            (Suggestion::Steep, "steep"),
        ] {
            let got = found.suggestion_for(rule).unwrap();
            let want = expected[key].as_f64().unwrap();
            assert!(
                (got / want - 1.0).abs() < 1e-12,
                "{name} {key}: {got} against fastai's {want}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 15);
}

/// Records the sweeps that `tune/lr_find_oracle.py` reads (see the module's comment):
/// kiln's `lr_find` on the digits with SGD and with Adam from two seeds each, and a
/// synthetic curve that diverges before the sweep ends.
#[test]
#[ignore = "writes the oracle's input; run by hand"]
fn record_curves_for_the_oracle() {
    let mut curves = Vec::new();
    let mut record = |name: String, steps: usize, lrs: &[f64], raw: &[f64]| {
        curves.push(serde_json::json!({
            "name": name,
            "steps": steps,
            "learning_rates": lrs,
            "raw_losses": raw,
        }));
    };
    for (algorithm, seed) in [("sgd", 0u64), ("sgd", 2), ("adam", 0), ("adam", 3)] {
        let cpu = Cpu::with_threads(2).unwrap();
        let optimizer = match algorithm {
            "sgd" => Optimizer::new(Sgd::default()),
            _ => Optimizer::new(Adam::default()),
        };
        let mut t = Trainer::new(
            Small::new(&cpu, 32, seed).unwrap(),
            Loss::sparse_categorical_crossentropy(),
            optimizer,
        )
        .unwrap();
        let options = LrFindOptions::new(32).pipeline(scale()).seed(seed);
        let found = t.lr_find(digits(), &options).unwrap();
        // The raw losses up to where the sweep stopped, and for a sweep that stopped
        // early, none after: the oracle smooths and stops them itself.
        record(
            format!("{algorithm}_digits_seed{seed}"),
            options.steps,
            &found.learning_rates,
            &found.raw_losses,
        );
    }
    // A loss that falls, then blows up before the 100 steps end, with some noise.
    let lrs: Vec<f64> = (0..100)
        .map(|i| 1e-7 * 1e8f64.powf(f64::from(i) / 100.0))
        .collect();
    let raw: Vec<f64> = lrs
        .iter()
        .enumerate()
        .map(|(i, lr)| {
            let noise = 0.05 * (i as f64 * 12.9898).sin();
            2.3 / (1.0 + lr / 1e-4).sqrt() + (lr / 0.02).powi(2) + 0.2 + noise
        })
        .collect();
    record("synthetic_diverging".into(), 100, &lrs, &raw);
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lr_find_recorded.json");
    let text = serde_json::to_string_pretty(&serde_json::json!({ "curves": curves })).unwrap();
    std::fs::write(&path, text).unwrap();
    println!("wrote {}", path.display());
}
