//! `fit`, `evaluate` and `predict` end to end on real digits: learning, metrics
//! against a host computation, reproducibility, callbacks, resuming, and stopping on
//! a non-finite loss.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kiln::data::{InMemory, Inputs, Pipeline, Targets as DataTargets};
use kiln::prelude::*;
use kiln::train::checkpoint::{self, CheckpointExtra};
use kiln::train::{Error, Evaluation};

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

kiln::model! {
    /// The same network, for a regression on the digits' label as a number.
    pub struct SmallRegressor {
        input: [28, 28, 1],
        conv: Conv2d(filters = 8, kernel = 3, stride = 2, activation = relu),
        pool: MaxPool2d(2),
        flat: Flatten,
        out: Dense(1),
    }
}

fn digits() -> (InMemory, InMemory) {
    let (train, test) = kiln::data::mnist::embedded().unwrap();
    let train = train.select(&(0..1200).collect::<Vec<_>>()).unwrap();
    let test = test.select(&(0..400).collect::<Vec<_>>()).unwrap();
    (train, test)
}

fn scale() -> Pipeline {
    Pipeline::new().scale(1.0 / 255.0)
}

fn trainer(seed: u64) -> Trainer<Cpu, Small> {
    let cpu = Cpu::with_threads(2).unwrap();
    let model = Small::new(&cpu, 32, seed).unwrap();
    Trainer::new(
        model,
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()),
    )
    .unwrap()
    .metrics([
        Metric::Accuracy,
        Metric::TopKAccuracy(3),
        Metric::Precision,
        Metric::Recall,
        Metric::F1,
    ])
}

fn options(epochs: usize) -> FitOptions<Cpu, Small> {
    FitOptions::new(epochs, 32)
        .seed(5)
        .pipeline(scale())
        .verbose(Verbosity::Silent)
}

#[test]
fn fit_learns_and_evaluate_agrees_with_the_last_validation() {
    let (train, test) = digits();
    let mut t = trainer(1);
    let history = t
        .fit(train, options(4).validation_data(test.clone()))
        .unwrap();
    assert_eq!(
        history.names(),
        [
            "loss",
            "accuracy",
            "top_3_accuracy",
            "precision",
            "recall",
            "f1_score",
            "val_loss",
            "val_accuracy",
            "val_top_3_accuracy",
            "val_precision",
            "val_recall",
            "val_f1_score"
        ]
    );
    let loss = history.series("loss");
    assert!(loss[3] < 0.6 * loss[0], "loss {loss:?}");
    let last = history.last().unwrap();
    assert!(last.get("val_accuracy").unwrap() > 0.75, "{last:?}");
    assert_eq!(last.learning_rate, 1e-3);
    let eval = t.evaluate(test, 32, &scale()).unwrap();
    for (name, value) in &eval.values {
        let logged = last.get(&format!("val_{name}")).unwrap();
        assert!((value - logged).abs() < 1e-6, "{name}: {value} vs {logged}");
    }
    assert_eq!(eval.samples, 400);
    assert_eq!(eval.confusion.as_ref().unwrap().total(), 400);
}

/// Every metric recomputed on the host from `predict`'s outputs.
#[test]
fn metrics_match_a_host_computation_from_predict() {
    let (train, test) = digits();
    let mut t = trainer(2);
    t.fit(train, options(1)).unwrap();
    let eval: Evaluation = t.evaluate(test.clone(), 32, &scale()).unwrap();
    let outputs = t.predict(test.clone(), 32, &scale()).unwrap();
    let labels = test.labels().unwrap();
    let mut confusion = vec![vec![0u64; 10]; 10];
    let (mut top3, mut loss) = (0usize, 0.0f64);
    for (row, &label) in outputs.chunks(10).zip(labels) {
        let label = label as usize;
        let predicted = (0..10).fold(0, |b, i| if row[i] > row[b] { i } else { b });
        confusion[label][predicted] += 1;
        top3 += usize::from(row.iter().filter(|&&v| v > row[label]).count() < 3);
        loss -= f64::from(row[label].max(1e-7)).ln();
    }
    let n = labels.len() as f64;
    let accuracy = (0..10).map(|i| confusion[i][i]).sum::<u64>() as f64 / n;
    let (mut p, mut r, mut f) = (0.0, 0.0, 0.0);
    for (c, row) in confusion.iter().enumerate() {
        let tp = row[c] as f64;
        let predicted: u64 = confusion.iter().map(|r| r[c]).sum();
        let actual: u64 = row.iter().sum();
        let pc = if predicted == 0 {
            0.0
        } else {
            tp / predicted as f64
        };
        let rc = if actual == 0 { 0.0 } else { tp / actual as f64 };
        p += pc / 10.0;
        r += rc / 10.0;
        f += if pc + rc == 0.0 {
            0.0
        } else {
            2.0 * pc * rc / (pc + rc) / 10.0
        };
    }
    let want = [
        ("loss", loss / n),
        ("accuracy", accuracy),
        ("top_3_accuracy", top3 as f64 / n),
        ("precision", p),
        ("recall", r),
        ("f1_score", f),
    ];
    for (name, value) in want {
        let got = eval.get(name).unwrap();
        assert!(
            (got - value).abs() < 1e-5,
            "{name}: kiln {got}, host {value}"
        );
    }
    let matrix = eval.confusion.unwrap();
    for (t, row) in confusion.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            assert_eq!(matrix.get(t, p), count);
        }
    }
}

#[test]
fn regression_metrics_match_a_host_computation() {
    let (train, test) = digits();
    let as_values = |d: &InMemory| {
        let (shape, inputs, targets) = d.clone().into_parts();
        let DataTargets::Classes { labels, .. } = targets else {
            unreachable!()
        };
        let values = labels.iter().map(|&l| l as f32).collect();
        InMemory::new(shape, inputs, DataTargets::Real { values, width: 1 }).unwrap()
    };
    let (train, test) = (as_values(&train), as_values(&test));
    let cpu = Cpu::with_threads(2).unwrap();
    let model = SmallRegressor::new(&cpu, 32, 3).unwrap();
    let mut t = Trainer::new(
        model,
        Loss::mean_squared_error(),
        Optimizer::new(Adam::default()),
    )
    .unwrap()
    .metrics([
        Metric::MeanAbsoluteError,
        Metric::MeanSquaredError,
        Metric::RootMeanSquaredError,
        Metric::R2,
    ]);
    let history = t
        .fit(
            train,
            FitOptions::new(2, 32)
                .pipeline(scale())
                .verbose(Verbosity::Silent),
        )
        .unwrap();
    let train_mse = history.last().unwrap();
    assert!((train_mse.get("loss").unwrap() - train_mse.get("mse").unwrap()).abs() < 1e-3);
    let eval = t.evaluate(test.clone(), 32, &scale()).unwrap();
    let outputs = t.predict(test.clone(), 32, &scale()).unwrap();
    let DataTargets::Real { values, .. } = test.targets() else {
        unreachable!()
    };
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (mut abs, mut sq, mut tot) = (0.0, 0.0, 0.0);
    for (&o, &y) in outputs.iter().zip(values) {
        let e = f64::from(o) - f64::from(y);
        abs += e.abs();
        sq += e * e;
        tot += (f64::from(y) - mean).powi(2);
    }
    let want = [
        ("mae", abs / n),
        ("mse", sq / n),
        ("rmse", (sq / n).sqrt()),
        ("r2_score", 1.0 - sq / tot),
        ("loss", sq / n),
    ];
    for (name, value) in want {
        let got = eval.get(name).unwrap();
        assert!(
            (got - value).abs() < 1e-4 * (1.0 + value.abs()),
            "{name}: kiln {got}, host {value}"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_history_bit_for_bit() {
    let (train, test) = digits();
    let run = || {
        let mut t = trainer(7);
        let history = t
            .fit(
                train.clone(),
                options(2).validation_data(test.clone()).workers(2),
            )
            .unwrap();
        history
            .epochs
            .iter()
            .flat_map(|e| e.values.iter().map(|(_, v)| v.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn early_stopping_restores_the_best_weights_and_callbacks_write_their_files() {
    let (train, test) = digits();
    let dir = std::env::temp_dir().join(format!("kiln-fit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("log.csv");
    let mut t = trainer(4);
    // A learning rate that overshoots, so validation loss does not fall for long.
    t.optimizer_mut().set_learning_rate(2e-2).unwrap();
    let history = t
        .fit(
            train,
            options(8)
                .validation_data(test.clone())
                .callback(
                    EarlyStopping::new("val_loss")
                        .patience(1)
                        .restore_best_weights(true),
                )
                .callback(
                    ModelCheckpoint::new(dir.join("best.safetensors")).best_only("val_accuracy"),
                )
                .callback(CsvLogger::new(&csv)),
        )
        .unwrap();
    let val = history.series("val_loss");
    let best = val.iter().cloned().fold(f64::INFINITY, f64::min);
    let eval = t.evaluate(test, 32, &scale()).unwrap();
    assert!(
        (eval.get("loss").unwrap() - best).abs() < 1e-6,
        "restored {eval:?}, best {best}"
    );
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(rows.lines().count(), history.epochs.len() + 1, "{rows}");
    assert!(rows.starts_with("epoch,loss,accuracy"), "{rows}");
    let info = checkpoint::read_info(dir.join("best.safetensors")).unwrap();
    let saved_history = info.history.unwrap();
    let best_acc = history
        .series("val_accuracy")
        .iter()
        .cloned()
        .fold(0.0, f64::max);
    assert_eq!(
        saved_history.last().unwrap().get("val_accuracy"),
        Some(best_acc)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn training_resumed_from_a_checkpoint_continues_bit_for_bit() {
    let (train, _) = digits();
    let path = std::env::temp_dir().join(format!("kiln-resume-{}.safetensors", std::process::id()));
    let mut whole = trainer(9);
    whole.fit(train.clone(), options(2)).unwrap();
    {
        let (model, optimizer) = whole.parts_mut();
        let extra = CheckpointExtra {
            optimizer: Some(optimizer),
            epoch: Some(2),
            history: None,
        };
        checkpoint::save(&path, model, &extra).unwrap();
    }
    whole
        .fit(train.clone(), options(4).initial_epoch(2))
        .unwrap();
    let mut resumed = trainer(1234);
    let info = {
        let (model, optimizer) = resumed.parts_mut();
        checkpoint::load(&path, model, Some(optimizer)).unwrap()
    };
    assert_eq!(info.epoch, Some(2));
    resumed.fit(train, options(4).initial_epoch(2)).unwrap();
    let weights = |t: &Trainer<Cpu, Small>| kiln::train::Weights::of(t.model()).unwrap();
    let (a, b) = (weights(&whole), weights(&resumed));
    for ((name, _, x), (_, _, y)) in a.iter().zip(b.iter()) {
        assert!(
            x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{name} differs"
        );
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_diverging_run_stops_with_the_epoch_step_and_layer() {
    let (train, _) = digits();
    let cpu = Cpu::with_threads(2).unwrap();
    let model = Small::new(&cpu, 32, 1).unwrap();
    // Updates so large that the weights overflow to infinity.
    let sgd = Sgd {
        learning_rate: 1e38,
        ..Sgd::default()
    };
    let mut t = Trainer::new(
        model,
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(sgd),
    )
    .unwrap();
    let err = t.fit(train, options(3)).unwrap_err();
    let Error::NonFinite {
        epoch,
        step,
        detail,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*epoch, 0);
    assert!(*step < 40, "step {step}");
    assert!(
        detail.contains("out.weight") && detail.contains("learning rate"),
        "{err}"
    );
}

#[test]
fn a_gradient_that_overflows_stops_the_run_before_the_update() {
    // Targets near f32::MAX: the outputs stay finite, but the squared error's
    // gradient, 2 (y - t), overflows.
    let (train, _) = digits();
    let (shape, inputs, _) = train.into_parts();
    let n = shape.iter().product::<usize>();
    let n = inputs.len() / n;
    let train = InMemory::new(
        shape,
        inputs,
        DataTargets::Real {
            values: vec![3.0e38; n],
            width: 1,
        },
    )
    .unwrap();
    let cpu = Cpu::with_threads(2).unwrap();
    let model = SmallRegressor::new(&cpu, 32, 3).unwrap();
    let mut t = Trainer::new(
        model,
        Loss::mean_squared_error(),
        Optimizer::new(Sgd::default()),
    )
    .unwrap();
    let before = kiln::train::Weights::of(t.model()).unwrap();
    let err = t
        .fit(
            train,
            FitOptions::new(1, 32)
                .pipeline(scale())
                .verbose(Verbosity::Silent),
        )
        .unwrap_err();
    let Error::NonFinite { step, detail, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*step, 0);
    assert!(
        detail.contains("went non-finite first in layer `out`"),
        "{err}"
    );
    let after = kiln::train::Weights::of(t.model()).unwrap();
    for ((name, _, x), (_, _, y)) in before.iter().zip(after.iter()) {
        assert_eq!(x, y, "{name} changed");
    }
}

#[test]
fn bad_options_and_mismatched_data_are_refused() {
    let (train, _) = digits();
    let mut t = trainer(1);
    let err = t
        .fit(
            train.clone(),
            FitOptions::new(1, 64).verbose(Verbosity::Silent),
        )
        .unwrap_err();
    assert!(err.to_string().contains("batch size 64"), "{err}");
    let err = t
        .fit(train.clone(), options(1).validation_split(1.5))
        .unwrap_err();
    assert!(err.to_string().contains("validation_split"), "{err}");
    let wrong = InMemory::new(
        vec![8, 8, 1],
        Inputs::U8(vec![0; 64]),
        DataTargets::Classes {
            labels: vec![0],
            classes: 10,
        },
    )
    .unwrap();
    let err = t.fit(wrong, options(1)).unwrap_err();
    assert!(err.to_string().contains("[8, 8, 1]"), "{err}");
    let err = t
        .fit(
            train,
            options(2)
                .validation_split(0.25)
                .callback(EarlyStopping::new("val_auc")),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("val_auc") && err.to_string().contains("val_loss"),
        "{err}"
    );
}

#[test]
fn a_moving_average_is_what_validation_evaluate_and_predict_use() {
    let (train, test) = digits();
    let cpu = Cpu::with_threads(2).unwrap();
    let mut t = trainer(3).ema(Ema::new(0.9));
    let history = t
        .fit(train, options(2).validation_data(test.clone()))
        .unwrap();
    let ema = t.average().unwrap();
    assert_eq!(ema.steps(), 2 * 1200u64.div_ceil(32));
    assert!(
        !ema.is_swapped(),
        "the trained weights are back in the model"
    );

    // The same figures from a model holding the averages, evaluated plainly.
    let averages = ema.state(&cpu).unwrap().tensors;
    let mut plain = trainer(4);
    plain
        .model_mut()
        .visit_parameters(&mut |p| {
            let (_, values) = averages.iter().find(|(k, _)| *k == p.key()).unwrap();
            cpu.upload(values, p.value)
        })
        .unwrap();
    let averaged = plain.evaluate(test.clone(), 32, &scale()).unwrap();
    let evaluation = t.evaluate(test.clone(), 32, &scale()).unwrap();
    assert_eq!(evaluation.values, averaged.values);
    let last = history.epochs.last().unwrap();
    assert_eq!(last.get("val_loss"), averaged.get("loss"));
    assert_eq!(
        t.predict(test.clone(), 32, &scale()).unwrap(),
        plain.predict(test, 32, &scale()).unwrap()
    );
    // The trained weights differ from the averages.
    let mut differs = false;
    t.model()
        .parameters(&mut |p| {
            let (_, avg) = averages.iter().find(|(k, _)| *k == p.key()).unwrap();
            differs |= cpu.to_host(p.value, p.shape.size())? != *avg;
            Ok(())
        })
        .unwrap();
    assert!(differs);
}

#[test]
fn validation_every_few_epochs_and_after_the_last() {
    let (train, test) = digits();
    let mut t = trainer(6);
    let history = t
        .fit(
            train,
            options(5)
                .validation_data(test)
                .validation_freq(2)
                .callback(EarlyStopping::new("val_loss").patience(5)),
        )
        .unwrap();
    let validated: Vec<bool> = history
        .epochs
        .iter()
        .map(|e| e.get("val_loss").is_some())
        .collect();
    assert_eq!(validated, [false, true, false, true, true]);
    let err = trainer(6)
        .fit(digits().0, options(1).validation_freq(0))
        .unwrap_err();
    assert!(err.to_string().contains("validation_freq"), "{err}");
}
