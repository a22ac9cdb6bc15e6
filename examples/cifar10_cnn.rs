//! The seed program: the Keras CIFAR-10 tutorial, written with kiln.
//!
//! Three Conv2D(32/64/128, 3x3, relu) + MaxPool(2) blocks, Flatten, Dense(128, relu),
//! Dense(10, softmax); Adam with Keras's defaults; sparse categorical cross-entropy on
//! the softmax output; accuracy; 10 epochs of batches of 64, with the test set as
//! validation data.
//!
//! ```text
//! cargo run --release --example cifar10_cnn -- [--epochs N] [--batch-size N] [--seed N] [--data DIR]
//! ```
//!
//! Without `--data`, CIFAR-10 is downloaded like Keras's `cifar10.load_data()` (into
//! `KILN_DATA_DIR`, else the user's cache folder, verified and reused). `--data DIR`
//! reads the binary version's files (`data_batch_1.bin` .. `test_batch.bin`, plain or
//! gzipped) from `DIR`. `--device cuda` trains on the GPU (a build with `--features
//! cuda`).
//!
//! `--distributed` trains data-parallel over the processes that `mpirun` started (a
//! build with `--features mpi`), each on its shard of every global batch of `N x
//! --batch-size` images, rank 0 printing:
//!
//! ```text
//! cargo build --release --features mpi --example cifar10_cnn
//! KILN_THREADS=1 mpirun -np 2 target/release/examples/cifar10_cnn --distributed --batch-size 32
//! ```

use std::sync::Arc;
use std::time::Instant;

use kiln::data::InMemory;
use kiln::data::cifar;
use kiln::distributed::World;
use kiln::prelude::*;
use kiln_examples::args::{Args, Device};
use kiln_examples::device::{OnBackend, run_on};

kiln::model! {
    /// The CNN of the Keras CIFAR-10 tutorial.
    pub struct SeedCnn {
        input: [32, 32, 3],
        conv1: Conv2d(32, 3, relu),
        pool1: MaxPool2d(2),
        conv2: Conv2d(64, 3, relu),
        pool2: MaxPool2d(2),
        conv3: Conv2d(128, 3, relu),
        pool3: MaxPool2d(2),
        flat: Flatten,
        fc1: Dense(128, relu),
        out: Dense(10, softmax),
    }
}

fn main() -> std::process::ExitCode {
    kiln_examples::main_with(run)
}

// The example's own flag. (A comment, not a doc comment: clap would show it as the
// example's description.)
#[derive(clap::Args, Debug)]
struct Extra {
    /// Train data-parallel over the processes `mpirun -np N` started (a build with
    /// `--features mpi`); `--batch-size` is each process's part of a batch.
    #[arg(long)]
    distributed: bool,
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (args, extra) = Args::parse_with::<Extra>(
        Args {
            epochs: 10,
            batch_size: 64,
            seed: 1,
            data: None,
            device: Device::Cpu,
        },
        true,
    )?;
    // First, so that a `--distributed` program started without mpirun says so at once.
    let world = if extra.distributed {
        Some(World::init()?)
    } else {
        None
    };
    let root = world.as_ref().is_none_or(World::is_root);
    // (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    let loading = Instant::now();
    let (train, test) = match &args.data {
        Some(dir) => cifar::load_dir(dir)?,
        None => cifar::load_data()?,
    };
    // Shared, not copied: the batchers read the same bytes.
    let (train, test) = (Arc::new(train), Arc::new(test));
    if root {
        println!(
            "CIFAR-10: {} training and {} test images, loaded in {:.1}s",
            train.len(),
            test.len(),
            loading.elapsed().as_secs_f64()
        );
        println!("{}", <SeedCnn>::summary());
    }
    run_on(
        args.device,
        SeedProgram {
            args: args.clone(),
            train,
            test,
            world,
        },
    )
}

/// The training, written once for every backend.
struct SeedProgram {
    args: Args,
    train: Arc<InMemory>,
    test: Arc<InMemory>,
    /// The ranks, with `--distributed`.
    world: Option<World>,
}

impl OnBackend for SeedProgram {
    fn run<B: Backend>(self, backend: &B) -> Result<(), Box<dyn std::error::Error>> {
        let SeedProgram {
            args,
            train,
            test,
            world,
        } = self;
        let root = world.as_ref().is_none_or(World::is_root);
        match &world {
            Some(w) if root => println!(
                "training on {} in each of {} processes, batches of {} x {}",
                backend.name(),
                w.size(),
                w.size(),
                args.batch_size
            ),
            Some(_) => {}
            None => println!("training on {}", backend.name()),
        }
        // x_train, x_test = x_train / 255.0, x_test / 255.0
        let pipeline = Pipeline::new().scale(1.0 / 255.0);
        let model = SeedCnn::new(backend, args.batch_size, args.seed)?;
        // model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        let mut trainer = Trainer::new(
            model,
            Loss::sparse_categorical_crossentropy(),
            Optimizer::new(Adam::default()),
        )?
        .metrics([Metric::Accuracy]);
        // model.fit(x_train, y_train, epochs=10, batch_size=64, validation_data=(x_test, y_test))
        let mut options = FitOptions::new(args.epochs, args.batch_size)
            .seed(args.seed)
            .pipeline(pipeline.clone())
            .validation_data(Arc::clone(&test));
        if let Some(world) = &world {
            options = options.distributed(world.clone());
        }
        let started = Instant::now();
        let history = trainer.fit(Arc::clone(&train), options)?;
        let train_seconds = started.elapsed().as_secs_f64();
        if let Some(world) = &world {
            // Every rank's time in all-reduces (a sum of one-hot vectors): the transfer
            // plus its waits for slower ranks. Where one rank is always the slowest, its
            // time is about the transfer alone.
            let stats = world.stats();
            let mut seconds = vec![0.0; world.size()];
            seconds[world.rank()] = stats.seconds;
            world.sum_f64(&mut seconds)?;
            let list = seconds
                .iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(", ");
            if root {
                println!(
                    "all-reduce: {} calls, {:.0} KB a call on average; seconds in them \
                     by rank: {list} (of {train_seconds:.2} s of fit)",
                    stats.all_reduces,
                    stats.bytes as f64 / stats.all_reduces.max(1) as f64 / 1e3,
                );
            }
        }
        if !root {
            return Ok(());
        }
        // model.evaluate(x_test, y_test)
        let evaluation = trainer.evaluate(Arc::clone(&test), args.batch_size, &pipeline)?;

        kiln_examples::report::finish_classifier(
            "cifar10_cnn",
            &history,
            &evaluation,
            train_seconds,
            train.len(),
        )?;
        Ok(())
    }
}
