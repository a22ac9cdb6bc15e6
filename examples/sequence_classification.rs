//! Sequence classification with 1-D convolutions and a GRU, on a synthetic task whose answer
//! is known: which way a ramp hidden in a noisy two-feature signal goes, and in which
//! feature.
//!
//! Each sample is 128 time steps of two features, both Gaussian noise (standard
//! deviation 0.5). A ramp of 16 steps, from -1 to 1 or from 1 to -1 (mean zero), is
//! added to one feature at a random place. The label is the feature and the
//! direction (the answer): 0 and 1 rising and falling in feature 0, 2 and 3 in
//! feature 1. The matched filter, which knows the ramp's shape and tries every
//! place and both features (`examples/python/sequence_classification_oracle.py`),
//! gets 95 % of the labels right: the noise hides the rest. Guessing gets 25 %, and
//! any rule blind to the order of time at most 50 %: a falling ramp's values are a
//! rising one's, reversed, so per-feature statistics (a histogram, the variance)
//! find the feature but not the direction. The network must find the ramp's shape wherever it
//! lies: two convolutions (the second dilated), max pooling over time, and a GRU
//! over the filters' steps whose last state the classifier reads.
//!
//! ```text
//! cargo run --release --example sequence_classification -- [--epochs N] [--batch-size N] [--seed N]
//! ```
//!
//! 8,000 training, 2,000 validation and 2,000 test sequences, drawn from `--seed`
//! (which also chooses the initial weights and the shuffling). `--device cuda`
//! trains on the GPU (a build with `--features cuda`).

use std::f64::consts::PI;
use std::sync::Arc;
use std::time::Instant;

use kiln::data::{InMemory, Inputs, Targets};
use kiln::kernels::rng::Rng;
use kiln::prelude::*;
use kiln_examples::args::{Args, Device};
use kiln_examples::device::{OnBackend, run_on};

/// Time steps a sequence has.
const TIME: usize = 128;
/// Features a time step has.
const FEATURES: usize = 2;
/// Time steps a ramp spans.
const MOTIF: usize = 16;
/// The noise's standard deviation.
const NOISE: f64 = 0.5;
/// Two directions in each of the two features.
const CLASSES: usize = 4;

kiln::model! {
    /// Two convolutions over time, the second dilated so that the pair sees 22 steps
    /// (more than a ramp), max pooling between, then a GRU that reads the filters'
    /// 64 steps and keeps what it needs of them in its last state.
    pub struct MotifNet {
        input: [128, 2],
        conv1: Conv1d(32, 5, relu, padding = same),
        pool1: MaxPool1d(2),
        conv2: Conv1d(32, 5, relu, dilation = 2, padding = same),
        gru: Gru(32, bidirectional = true),
        out: Dense(4, softmax),
    }
}

/// Step `t` of class `class`'s ramp (rising for even classes), and the feature it
/// lies in.
fn ramp(class: usize, t: usize) -> (f64, usize) {
    let rising = 2.0 * (t as f64 + 0.5) / MOTIF as f64 - 1.0;
    let value = if class.is_multiple_of(2) {
        rising
    } else {
        -rising
    };
    (value, class / 2)
}

/// A standard normal value (Box-Muller).
fn normal(rng: &mut Rng) -> f64 {
    let u1 = f64::from(rng.uniform()).max(1e-12);
    let u2 = f64::from(rng.uniform());
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// `count` labelled sequences drawn from `seed`, classes in turn.
fn sequences(count: usize, seed: u64) -> Result<InMemory, kiln::data::Error> {
    let mut rng = Rng::new(seed);
    let mut x = Vec::with_capacity(count * TIME * FEATURES);
    let mut labels = Vec::with_capacity(count);
    for i in 0..count {
        let class = i % CLASSES;
        let start = (rng.next_u64() % (TIME - MOTIF + 1) as u64) as usize;
        for t in 0..TIME {
            for f in 0..FEATURES {
                let mut v = NOISE * normal(&mut rng);
                if (start..start + MOTIF).contains(&t) {
                    let (ramp, feature) = ramp(class, t - start);
                    if f == feature {
                        v += ramp;
                    }
                }
                x.push(v as f32);
            }
        }
        labels.push(class as u32);
    }
    InMemory::new(
        vec![TIME, FEATURES],
        Inputs::F32(x),
        Targets::Classes {
            labels,
            classes: CLASSES,
        },
    )
}

fn main() -> std::process::ExitCode {
    kiln_examples::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse_without_data(Args {
        epochs: 10,
        batch_size: 64,
        seed: 1,
        data: None,
        device: Device::Cpu,
    })?;
    let train = Arc::new(sequences(8_000, args.seed)?);
    let validation = Arc::new(sequences(2_000, args.seed + 1_000)?);
    let test = Arc::new(sequences(2_000, args.seed + 2_000)?);
    println!("{}", <MotifNet>::summary());
    println!(
        "{} training, {} validation, {} test sequences of {TIME} steps x {FEATURES} features, \
         {CLASSES} classes (chance: 25 %; any rule blind to time order: at most 50 %)",
        train.len(),
        validation.len(),
        test.len()
    );
    run_on(
        args.device,
        Motifs {
            args,
            train,
            validation,
            test,
        },
    )
}

/// The training, written once for every backend.
struct Motifs {
    args: Args,
    train: Arc<InMemory>,
    validation: Arc<InMemory>,
    test: Arc<InMemory>,
}

impl OnBackend for Motifs {
    fn run<B: Backend>(self, backend: &B) -> Result<(), Box<dyn std::error::Error>> {
        let Motifs {
            args,
            train,
            validation,
            test,
        } = self;
        println!("training on {}", backend.name());
        let model = MotifNet::new(backend, args.batch_size, args.seed)?;
        let mut trainer = Trainer::new(
            model,
            Loss::sparse_categorical_crossentropy(),
            Optimizer::new(Adam::default()),
        )?
        .metrics([Metric::Accuracy]);
        let pipeline = Pipeline::new();
        let started = Instant::now();
        let history = trainer.fit(
            Arc::clone(&train),
            FitOptions::new(args.epochs, args.batch_size)
                .seed(args.seed)
                .pipeline(pipeline.clone())
                .validation_data(validation),
        )?;
        let train_seconds = started.elapsed().as_secs_f64();
        let evaluation = trainer.evaluate(test, args.batch_size, &pipeline)?;
        kiln_examples::report::finish_classifier(
            "sequence_classification",
            &history,
            &evaluation,
            train_seconds,
            train.len(),
        )?;
        Ok(())
    }
}
