//! Mirror test-time augmentation in `predict`, `evaluate` and `fit`'s validation, on
//! real digits: the outputs are the mean of those for the images and for their mirror
//! images made by hand here, the loss and metrics are those of the mean, a model that
//! is mirror-symmetric by construction is unchanged by it, and a model that does not
//! take images is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kiln::data::{InMemory, Inputs, Pipeline, Targets as DataTargets};
use kiln::prelude::*;
use kiln::train::{Error, Evaluation};

kiln::model! {
    /// A small CNN for the 28x28 digits, ending in softmax.
    pub struct Small {
        input: [28, 28, 1],
        conv: Conv2d(filters = 8, kernel = 3, stride = 2, activation = relu),
        pool: MaxPool2d(2),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

kiln::model! {
    /// The same network ending in logits, for a loss `from_logits`.
    pub struct SmallLogits {
        input: [28, 28, 1],
        conv: Conv2d(filters = 8, kernel = 3, stride = 2, activation = relu),
        pool: MaxPool2d(2),
        flat: Flatten,
        out: Dense(10),
    }
}

kiln::model! {
    /// Mirror-symmetric by construction: 1x1 convolutions treat every pixel alike,
    /// the 2x2 windows of the pools on an even width pair up under the mirror, and
    /// the last pool takes the maximum over the whole image.
    pub struct Symmetric {
        input: [28, 28, 1],
        conv1: Conv2d(filters = 16, kernel = 1, activation = relu),
        pool1: MaxPool2d(2),
        conv2: Conv2d(filters = 16, kernel = 1, activation = relu),
        pool2: MaxPool2d(2),
        conv3: Conv2d(filters = 16, kernel = 1, activation = relu),
        pool3: MaxPool2d(7),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

kiln::model! {
    /// A model of feature vectors, which mirroring does not apply to.
    pub struct Vectors {
        input: [16],
        out: Dense(3, softmax),
    }
}

/// 600 training digits and 300 test digits (the last batch of 64 is short).
fn digits() -> (InMemory, InMemory) {
    let (train, test) = kiln::data::mnist::embedded().unwrap();
    let train = train.select(&(0..600).collect::<Vec<_>>()).unwrap();
    let test = test.select(&(0..300).collect::<Vec<_>>()).unwrap();
    (train, test)
}

/// `data` with every image mirrored left to right, byte by byte.
fn mirrored(data: &InMemory) -> InMemory {
    let bytes = data.bytes().unwrap();
    let mut flipped = vec![0u8; bytes.len()];
    for (image, out) in bytes.chunks(28 * 28).zip(flipped.chunks_mut(28 * 28)) {
        for y in 0..28 {
            for x in 0..28 {
                out[y * 28 + x] = image[y * 28 + 27 - x];
            }
        }
    }
    InMemory::new(
        vec![28, 28, 1],
        Inputs::U8(flipped),
        DataTargets::Classes {
            labels: data.labels().unwrap().to_vec(),
            classes: 10,
        },
    )
    .unwrap()
}

fn scale() -> Pipeline {
    Pipeline::new().scale(1.0 / 255.0)
}

fn plain(batch: usize) -> EvaluateOptions {
    EvaluateOptions::new(batch).pipeline(scale())
}

fn mirror(batch: usize) -> EvaluateOptions {
    plain(batch).tta(Tta::Mirror)
}

fn trainer<M: Model<Cpu>>(seed: u64, loss: Loss) -> Trainer<Cpu, M> {
    let model = M::new(&Cpu::with_threads(2).unwrap(), 64, seed).unwrap();
    Trainer::new(model, loss, Optimizer::new(Adam::default()))
        .unwrap()
        .metrics([Metric::Accuracy, Metric::TopKAccuracy(3)])
}

/// One quick epoch, so that the outputs are far from uniform and mirroring matters.
fn trained<M: Model<Cpu>>(seed: u64, loss: Loss) -> Trainer<Cpu, M> {
    let mut t = trainer::<M>(seed, loss);
    let options = FitOptions::new(1, 32)
        .seed(3)
        .pipeline(scale())
        .verbose(Verbosity::Silent);
    t.fit(digits().0, options).unwrap();
    t
}

/// `(a + b) / 2`, value by value.
fn mean(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(a, b)| (a + b) * 0.5).collect()
}

#[test]
fn predictions_are_the_mean_of_the_image_and_its_mirror() {
    let test = digits().1;
    let flipped = mirrored(&test);

    // Probabilities after softmax.
    let mut t = trained::<Small>(1, Loss::sparse_categorical_crossentropy());
    let as_is = t.predict_with(test.clone(), &plain(64)).unwrap();
    let of_mirror = t.predict_with(flipped.clone(), &plain(64)).unwrap();
    let tta = t.predict_with(test.clone(), &mirror(64)).unwrap();
    assert_eq!(tta, mean(&as_is, &of_mirror));
    assert_ne!(tta, as_is, "mirroring changes the digits' outputs");
    assert_eq!(t.predict(test.clone(), 64, &scale()).unwrap(), as_is);

    // Logits, for a model without a last activation.
    let logits = Loss::sparse_categorical_crossentropy().from_logits(true);
    let mut t = trainer::<SmallLogits>(2, logits);
    let as_is = t.predict_with(test.clone(), &plain(64)).unwrap();
    let of_mirror = t.predict_with(flipped, &plain(64)).unwrap();
    assert!(as_is.iter().any(|&v| v < 0.0), "logits, not probabilities");
    let tta = t.predict_with(test, &mirror(64)).unwrap();
    assert_eq!(tta, mean(&as_is, &of_mirror));
}

#[test]
fn loss_and_metrics_come_from_the_mean_outputs() {
    let test = digits().1;
    let mut t = trained::<Small>(4, Loss::sparse_categorical_crossentropy());
    let outputs = t.predict_with(test.clone(), &mirror(64)).unwrap();
    let evaluation = t.evaluate_with(test.clone(), &mirror(64)).unwrap();
    let labels = test.labels().unwrap();
    let (mut loss, mut correct, mut top3) = (0.0f64, 0usize, 0usize);
    for (row, &label) in outputs.chunks(10).zip(labels) {
        let label = label as usize;
        let best = (0..10).fold(0, |b, i| if row[i] > row[b] { i } else { b });
        correct += usize::from(best == label);
        top3 += usize::from(row.iter().filter(|&&v| v > row[label]).count() < 3);
        loss -= f64::from(row[label].clamp(1e-7, 1.0 - 1e-7)).ln();
    }
    let n = labels.len() as f64;
    for (name, want) in [
        ("loss", loss / n),
        ("accuracy", correct as f64 / n),
        ("top_3_accuracy", top3 as f64 / n),
    ] {
        let got = evaluation.get(name).unwrap();
        assert!((got - want).abs() < 1e-5, "{name}: kiln {got}, host {want}");
    }
    assert_eq!(evaluation.samples, 300);
    let without = t.evaluate(test, 64, &scale()).unwrap();
    assert!(
        (without.get("loss").unwrap() - evaluation.get("loss").unwrap()).abs() > 1e-4,
        "{without:?} and {evaluation:?}"
    );
}

#[test]
fn a_mirror_symmetric_model_is_unchanged_by_tta() {
    let test = digits().1;
    let mut t = trained::<Symmetric>(5, Loss::sparse_categorical_crossentropy());
    let as_is = t.predict_with(test.clone(), &plain(64)).unwrap();
    assert_ne!(
        as_is[..10],
        as_is[10..20],
        "the outputs depend on the image"
    );
    assert_eq!(as_is, t.predict_with(mirrored(&test), &plain(64)).unwrap());
    assert_eq!(as_is, t.predict_with(test.clone(), &mirror(64)).unwrap());
    let without: Evaluation = t.evaluate_with(test.clone(), &plain(64)).unwrap();
    let with = t.evaluate_with(test, &mirror(64)).unwrap();
    assert_eq!(without, with);
}

#[test]
fn validation_in_fit_uses_tta() {
    let (train, test) = digits();
    let mut t = trainer::<Small>(6, Loss::sparse_categorical_crossentropy());
    let options = FitOptions::new(2, 32)
        .seed(3)
        .pipeline(scale())
        .validation_data(test.clone())
        .validation_tta(Tta::Mirror)
        .verbose(Verbosity::Silent);
    let history = t.fit(train, options).unwrap();
    let last = history.epochs.last().unwrap();
    let evaluation = t.evaluate_with(test.clone(), &mirror(32)).unwrap();
    for name in ["loss", "accuracy"] {
        let logged = last
            .values
            .iter()
            .find(|(n, _)| *n == format!("val_{name}"));
        assert_eq!(
            logged.unwrap().1,
            evaluation.get(name).unwrap(),
            "val_{name}"
        );
    }
    let without = t.evaluate(test, 32, &scale()).unwrap();
    assert_ne!(without.get("loss"), evaluation.get("loss"));
}

#[test]
fn tta_on_a_model_of_vectors_is_an_error() {
    let data = InMemory::new(
        vec![16],
        Inputs::F32((0..64).map(|i| i as f32 / 64.0).collect()),
        DataTargets::Classes {
            labels: vec![0, 1, 2, 1],
            classes: 3,
        },
    )
    .unwrap();
    let mut t = trainer::<Vectors>(7, Loss::sparse_categorical_crossentropy());
    let options = EvaluateOptions::new(4).tta(Tta::Mirror);
    let refused = |e: Error| {
        let message = e.to_string();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        assert!(
            message.contains("Vectors takes samples of shape [16]")
                && message.contains("[height, width, channels]"),
            "{message}"
        );
    };
    refused(t.evaluate_with(data.clone(), &options).unwrap_err());
    refused(t.predict_with(data.clone(), &options).unwrap_err());
    let fit = FitOptions::new(1, 4)
        .validation_data(data.clone())
        .validation_tta(Tta::Mirror)
        .verbose(Verbosity::Silent);
    refused(t.fit(data.clone(), fit).unwrap_err());
    assert!(t.evaluate_with(data, &EvaluateOptions::new(4)).is_ok());
}
