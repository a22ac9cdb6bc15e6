//! Bad data meets a clear error before it can harm a model: a class label beyond the
//! model's classes is found before the first step, a non-finite input is named by its
//! index in the data set, and evaluation refuses a batch larger than the model's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kiln::data::{InMemory, Inputs, Pipeline, Targets as DataTargets};
use kiln::prelude::*;
use kiln::train::{Error, EvaluateOptions, Weights};

kiln::model! {
    /// A small CNN for the 28x28 digits.
    pub struct Small {
        input: [28, 28, 1],
        conv: Conv2d(filters = 4, kernel = 3, stride = 2, activation = relu),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

/// The first `n` training digits, pixels as floats in 0..1.
fn digits(n: usize) -> (Vec<f32>, Vec<u32>) {
    let (train, _) = kiln::data::mnist::embedded().unwrap();
    let train = train.select(&(0..n).collect::<Vec<_>>()).unwrap();
    let pixels = train
        .bytes()
        .unwrap()
        .iter()
        .map(|&b| f32::from(b) / 255.0)
        .collect();
    (pixels, train.labels().unwrap().to_vec())
}

fn data(pixels: Vec<f32>, labels: Vec<u32>, classes: usize) -> InMemory {
    InMemory::new(
        vec![28, 28, 1],
        Inputs::F32(pixels),
        DataTargets::Classes { labels, classes },
    )
    .unwrap()
}

fn trainer() -> Trainer<Cpu, Small> {
    let model = Small::new(&Cpu::with_threads(2).unwrap(), 32, 3).unwrap();
    Trainer::new(
        model,
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()),
    )
    .unwrap()
}

fn options(epochs: usize) -> FitOptions<Cpu, Small> {
    FitOptions::new(epochs, 32)
        .seed(9)
        .verbose(Verbosity::Silent)
}

#[test]
fn a_label_beyond_the_model_is_found_before_the_first_step() {
    let (pixels, mut labels) = digits(600);
    // Late in the data and, shuffled, in some late batch: found mid-epoch, it would
    // have come after earlier batches had changed the weights.
    labels[517] = 12;
    let mut t = trainer();
    let before = Weights::of(t.model()).unwrap();
    let err = t
        .fit(data(pixels.clone(), labels.clone(), 13), options(1))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Label {
                data: "training",
                index: 517,
                label: 12,
                classes: 10,
                model: "Small"
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("no weight changed"), "{err}");
    let after = Weights::of(t.model()).unwrap();
    for ((name, _, x), (_, _, y)) in before.iter().zip(after.iter()) {
        assert_eq!(x, y, "{name} changed");
    }

    // The same in the validation data.
    labels[517] = 3;
    let mut bad = labels[..100].to_vec();
    bad[42] = 10;
    let validation = data(pixels[..100 * 784].to_vec(), bad, 11);
    let err = t
        .fit(
            data(pixels, labels, 10),
            options(1).validation_data(validation),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Label {
                data: "validation",
                index: 42,
                label: 10,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_non_finite_input_is_named_by_its_index_in_the_data_set() {
    for (sample, value) in [(437, f32::NAN), (5, f32::INFINITY)] {
        let (mut pixels, labels) = digits(600);
        pixels[sample * 784 + 300] = value;
        let mut t = trainer();
        let err = t.fit(data(pixels, labels, 10), options(2)).unwrap_err();
        let Error::NonFiniteInput {
            epoch,
            index,
            position,
            value: found,
            ..
        } = err
        else {
            panic!("{err}")
        };
        assert_eq!((epoch, index, position), (0, sample, 300), "{err}");
        assert_eq!(found.to_bits(), value.to_bits());
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("sample {sample} of the data set")) && msg.contains("input"),
            "{msg}"
        );
        assert!(!msg.contains("learning rate"), "{msg}");
    }
}

/// Digits that say where each came from, as a data set reading its own files does.
struct FromFiles(InMemory);

impl kiln::data::Dataset for FromFiles {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn shape(&self) -> &[usize] {
        self.0.shape()
    }
    fn dtype(&self) -> kiln::data::Dtype {
        self.0.dtype()
    }
    fn target_kind(&self) -> kiln::data::TargetKind {
        self.0.target_kind()
    }
    fn get(&self, index: usize) -> kiln::data::Result<kiln::data::Sample<'_>> {
        self.0.get(index)
    }
    fn origin(&self, index: usize) -> Option<kiln::data::Origin> {
        Some(kiln::data::Origin {
            file: format!("digits-{}.bin", index / 100),
            place: Some(format!("record {}", index % 100)),
        })
    }
}

#[test]
fn a_non_finite_input_names_the_file_it_came_from() {
    let (mut pixels, labels) = digits(600);
    pixels[437 * 784 + 12] = f32::NAN;
    let mut t = trainer();
    let err = t
        .fit(FromFiles(data(pixels, labels, 10)), options(1))
        .unwrap_err();
    assert!(
        matches!(&err, Error::NonFiniteInput { index: 437, origin: Some(o), .. } if o.file == "digits-4.bin"),
        "{err}"
    );
    assert!(
        err.to_string().contains(
            "the input of sample 437 of the data set (from digits-4.bin, record 37) holds NaN"
        ),
        "{err}"
    );
}

#[test]
fn evaluate_and_predict_refuse_a_batch_larger_than_the_model_as_fit_does() {
    let (pixels, labels) = digits(100);
    let test = data(pixels, labels, 10);
    let mut t = trainer();
    let fit = t
        .fit(
            test.clone(),
            FitOptions::new(1, 64).verbose(Verbosity::Silent),
        )
        .unwrap_err()
        .to_string();
    let evaluate = t.evaluate(test.clone(), 64, &Pipeline::new()).unwrap_err();
    let predict = t.predict(test.clone(), 64, &Pipeline::new()).unwrap_err();
    let with = t
        .evaluate_with(test.clone(), &EvaluateOptions::new(64))
        .unwrap_err();
    for err in [evaluate.to_string(), predict.to_string(), with.to_string()] {
        assert_eq!(err, fit);
        assert!(
            err.contains("batch size 64") && err.contains("1..=32"),
            "{err}"
        );
    }
    assert_eq!(
        t.evaluate(test.clone(), 32, &Pipeline::new())
            .unwrap()
            .samples,
        100
    );
    assert_eq!(t.predict(test, 32, &Pipeline::new()).unwrap().len(), 1000);
}
