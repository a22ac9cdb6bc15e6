//! The seed's CNN, adapted to 28x28 grey digits, trained on the 10,000 real MNIST
//! digits that ship inside kiln (8,000 to train, 2,000 to test): offline, on the CPU.
//!
//! ```text
//! cargo run --release --example quickstart -- [--epochs N] [--batch-size N] [--seed N] [--data DIR]
//! ```
//!
//! `--data DIR` reads MNIST-style IDX files from `DIR` instead (the embedded split is
//! used when it is absent). `--device cuda` trains on the GPU (a build with
//! `--features cuda`).

use std::sync::Arc;
use std::time::Instant;

use kiln::data::InMemory;
use kiln::data::mnist;
use kiln::prelude::*;
use kiln_examples::args::{Args, Device};
use kiln_examples::device::{OnBackend, run_on};
use kiln_examples::digits::DigitCnn;

fn main() -> std::process::ExitCode {
    kiln_examples::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse(Args {
        epochs: 6,
        batch_size: 64,
        seed: 1,
        data: None,
        device: Device::Cpu,
    })?;
    let (train, test) = match &args.data {
        Some(dir) => mnist::IdxSet::mnist().load_dir(dir)?,
        None => mnist::embedded()?,
    };
    let (train, test) = (Arc::new(train), Arc::new(test));
    println!("{}", <DigitCnn>::summary());
    println!(
        "{} training digits, {} test digits",
        train.len(),
        test.len()
    );
    run_on(
        args.device,
        Quickstart {
            args: args.clone(),
            train,
            test,
        },
    )
}

/// The training, written once for every backend.
struct Quickstart {
    args: Args,
    train: Arc<InMemory>,
    test: Arc<InMemory>,
}

impl OnBackend for Quickstart {
    fn run<B: Backend>(self, backend: &B) -> Result<(), Box<dyn std::error::Error>> {
        let Quickstart { args, train, test } = self;
        println!("training on {}", backend.name());
        let model = DigitCnn::new(backend, args.batch_size, args.seed)?;
        let mut trainer = Trainer::new(
            model,
            Loss::sparse_categorical_crossentropy(),
            Optimizer::new(Adam::default()),
        )?
        .metrics([Metric::Accuracy]);
        // x / 255, as the Keras tutorial does.
        let pipeline = Pipeline::new().scale(1.0 / 255.0);
        let started = Instant::now();
        let history = trainer.fit(
            Arc::clone(&train),
            FitOptions::new(args.epochs, args.batch_size)
                .seed(args.seed)
                .pipeline(pipeline.clone())
                .validation_data(Arc::clone(&test)),
        )?;
        let train_seconds = started.elapsed().as_secs_f64();
        let evaluation = trainer.evaluate(Arc::clone(&test), args.batch_size, &pipeline)?;
        kiln_examples::report::finish_classifier(
            "quickstart",
            &history,
            &evaluation,
            train_seconds,
            train.len(),
        )?;
        Ok(())
    }
}
