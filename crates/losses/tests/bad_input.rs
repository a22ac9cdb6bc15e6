//! Bad input gives an error that names the loss, the sample and the value; nothing
//! panics.

#![allow(clippy::unwrap_used)]

use kiln_kernels::{Cpu, Tensor};
use kiln_losses::{BatchTargets, Criterion, Error, Loss};
use kiln_shape::{Activation, Rank1};

type Out = Rank1<3>;

fn setup(loss: Loss) -> (Cpu, Criterion<Out, Cpu>, Tensor<Out, Cpu>) {
    let cpu = Cpu::with_threads(1).unwrap();
    let criterion = Criterion::new(loss, &cpu, 4, Some(Activation::Softmax)).unwrap();
    let probs = [0.2, 0.3, 0.5, 0.6, 0.3, 0.1];
    let output = Tensor::from_slice(&cpu, 2, &probs).unwrap();
    (cpu, criterion, output)
}

#[test]
fn a_label_out_of_range_names_the_sample_and_the_label() {
    let (_, mut c, out) = setup(Loss::sparse_categorical_crossentropy());
    let err = c
        .compute(&out.view(), BatchTargets::Labels(&[0, 3]), None)
        .unwrap_err();
    assert!(matches!(
        err,
        Error::LabelOutOfRange {
            index: 1,
            label: 3,
            classes: 3,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("sparse_categorical_crossentropy") && msg.contains("sample 1"),
        "{msg}"
    );
}

#[test]
fn mismatched_batch_sizes_are_refused() {
    let (_, mut c, out) = setup(Loss::sparse_categorical_crossentropy());
    let err = c
        .compute(&out.view(), BatchTargets::Labels(&[0, 1, 2]), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BatchMismatch {
                output: 2,
                given: 3,
                ..
            }
        ),
        "{err}"
    );
    let err = c
        .compute(&out.view(), BatchTargets::Labels(&[0, 1]), Some(&[1.0]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BatchMismatch {
                what: "sample weights",
                ..
            }
        ),
        "{err}"
    );
    let (_, mut c, out) = setup(Loss::categorical_crossentropy());
    let err = c
        .compute(&out.view(), BatchTargets::Values(&[1.0, 0.0, 0.0]), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BatchMismatch {
                expected: 6,
                given: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn non_finite_outputs_and_targets_are_named() {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut c = Criterion::<Out, Cpu>::new(Loss::mean_squared_error(), &cpu, 4, None).unwrap();
    let out =
        Tensor::<Out, Cpu>::from_slice(&cpu, 2, &[0.0, 1.0, 2.0, 3.0, f32::INFINITY, 5.0]).unwrap();
    let err = c
        .compute(&out.view(), BatchTargets::Values(&[0.0; 6]), None)
        .unwrap_err();
    assert!(
        matches!(err, Error::NonFiniteOutput { index: 1, position: 1, value, .. } if value.is_infinite()),
        "{err}"
    );
    assert!(err.to_string().contains("mean_squared_error"), "{err}");
    let out = Tensor::<Out, Cpu>::from_slice(&cpu, 2, &[0.0; 6]).unwrap();
    let mut targets = [0.0; 6];
    targets[3] = f32::NAN;
    let err = c
        .compute(&out.view(), BatchTargets::Values(&targets), None)
        .unwrap_err();
    assert!(
        matches!(err, Error::NonFiniteTarget { index: 1, .. }),
        "{err}"
    );
}

#[test]
fn options_that_do_not_fit_are_config_errors() {
    let cpu = Cpu::with_threads(1).unwrap();
    let softmax = Some(Activation::Softmax);
    let bad = [
        (
            Loss::sparse_categorical_crossentropy().from_logits(true),
            softmax,
            "from_logits",
        ),
        (
            Loss::mean_squared_error().label_smoothing(0.1),
            None,
            "label smoothing",
        ),
        (
            Loss::categorical_crossentropy().label_smoothing(1.0),
            softmax,
            "[0, 1)",
        ),
        (
            Loss::sparse_categorical_crossentropy().class_weights([1.0, 2.0]),
            softmax,
            "2 class weights",
        ),
        (Loss::huber(-1.0), None, "delta"),
    ];
    for (loss, activation, needle) in bad {
        let err = Criterion::<Out, Cpu>::new(loss, &cpu, 4, activation).unwrap_err();
        assert!(
            matches!(err, Error::Config { .. }) && err.to_string().contains(needle),
            "{needle}: {err}"
        );
    }
    // Class labels with a loss that takes rows of values.
    let (_, mut c, out) = setup(Loss::categorical_crossentropy());
    let err = c
        .compute(&out.view(), BatchTargets::Labels(&[0, 1]), None)
        .unwrap_err();
    assert!(
        err.to_string().contains("sparse_categorical_crossentropy"),
        "{err}"
    );
    let (_, mut c, out) = setup(Loss::sparse_categorical_crossentropy());
    let err = c
        .compute(&out.view(), BatchTargets::Values(&[0.0; 6]), None)
        .unwrap_err();
    assert!(err.to_string().contains("BatchTargets::Labels"), "{err}");
}

#[test]
fn a_batch_larger_than_the_criterion_is_refused() {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut c = Criterion::<Out, Cpu>::new(Loss::mean_absolute_error(), &cpu, 1, None).unwrap();
    let out = Tensor::<Out, Cpu>::from_slice(&cpu, 2, &[0.0; 6]).unwrap();
    let err = c
        .compute(&out.view(), BatchTargets::Values(&[0.0; 6]), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BatchTooLarge {
                batch: 2,
                max_batch: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_launch_gives_its_value_once_and_the_same_as_compute() {
    let (_, mut c, out) = setup(Loss::sparse_categorical_crossentropy());
    let err = c.value().unwrap_err();
    assert!(err.to_string().contains("none is waiting"), "{err}");
    let whole = c
        .compute(&out.view(), BatchTargets::Labels(&[2, 0]), None)
        .unwrap();
    c.launch(&out.view(), BatchTargets::Labels(&[2, 0]), None)
        .unwrap();
    assert_eq!(c.value().unwrap(), whole);
    assert!((whole - (-(0.5f32.ln() + 0.6f32.ln()) / 2.0)).abs() < 1e-6);
    assert!(c.value().is_err(), "a launch's value is read once");
}

#[test]
fn a_non_finite_output_fails_the_launch_on_the_cpu() {
    let (cpu, mut c, _) = setup(Loss::sparse_categorical_crossentropy());
    let out =
        Tensor::<Out, Cpu>::from_slice(&cpu, 2, &[0.2, 0.3, 0.5, 0.6, f32::NAN, 0.1]).unwrap();
    let err = c
        .launch(&out.view(), BatchTargets::Labels(&[2, 0]), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NonFiniteOutput {
                index: 1,
                position: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(c.value().is_err(), "a failed launch leaves no value");
}
