//! A soak: `fit` for many epochs with validation, a checkpoint, a CSV log, TensorBoard
//! and a plot every epoch, watching what a leak shows: resident memory, threads, open
//! files and throughput, epoch by epoch (from Linux's `/proc/self`; elsewhere the test
//! says that it skipped).
//!
//! By default, a short soak of a small network on the embedded digits (40 epochs, a
//! few seconds): threads and open files must not change from epoch to epoch, and
//! resident memory must stop growing after the first epochs.
//!
//! `KILN_SOAK_MINUTES=60` soaks the seed CNN on CIFAR-10 (from `../shared/data`, or
//! `KILN_SOAK_DATA=DIR`) for that long, with `KILN_SOAK_THREADS` threads (2 by default),
//! prints the curve and writes it to `target/soak.csv`:
//!
//! ```text
//! KILN_SOAK_MINUTES=60 cargo test --release -p kiln-train --test soak -- --nocapture
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kiln::data::{Dataset, Pipeline, cifar};
use kiln::prelude::*;
use kiln_train::EpochLog;
use kiln_train::callbacks::{Callback, Context, CsvLogger, ModelCheckpoint, TensorBoard};

kiln::model! {
    /// A small CNN for the digits.
    pub struct Digits {
        input: [28, 28, 1],
        conv: Conv2d(8, 3, relu),
        pool: MaxPool2d(2),
        flat: Flatten,
        hidden: Dense(32, relu),
        out: Dense(10, softmax),
    }
}

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

/// What the process holds after an epoch.
#[derive(Clone, Copy, Debug)]
struct Reading {
    epoch: usize,
    seconds: f64,
    resident_kb: u64,
    threads: u64,
    open_files: usize,
    samples_per_second: f64,
}

/// `VmRSS` and `Threads` of `/proc/self/status`, and the entries of `/proc/self/fd`.
fn process() -> Option<(u64, u64, usize)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    let open_files = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some((field("VmRSS:")?, field("Threads:")?, open_files))
}

/// Plots the history, takes a reading after every epoch, and stops the run after
/// `minutes` when there is a limit. The readings are shared: `fit` owns its callbacks.
struct Watch {
    plot: PathBuf,
    started: Instant,
    minutes: Option<f64>,
    samples: usize,
    readings: Arc<Mutex<Vec<Reading>>>,
    verbose: bool,
}

impl<B: kiln::Backend, M: kiln::nn::Model<B>> Callback<B, M> for Watch {
    fn on_epoch_end(
        &mut self,
        log: &EpochLog,
        ctx: &mut Context<'_, B, M>,
    ) -> kiln_train::Result<()> {
        kiln_train::plot_history(ctx.history, &self.plot)?;
        let (resident_kb, threads, open_files) = process().expect("/proc/self is readable");
        let seconds = self.started.elapsed().as_secs_f64();
        let reading = Reading {
            epoch: log.epoch,
            seconds,
            resident_kb,
            threads,
            open_files,
            samples_per_second: self.samples as f64 / log.seconds,
        };
        if self.verbose {
            println!(
                "epoch {:>4}  {:>7.0} s  resident {:>7.1} MB  threads {:>2}  open files {:>3}  {:>6.0} samples/s  val_accuracy {:.4}",
                reading.epoch,
                reading.seconds,
                reading.resident_kb as f64 / 1024.0,
                reading.threads,
                reading.open_files,
                reading.samples_per_second,
                log.get("val_accuracy").unwrap_or(f64::NAN)
            );
        }
        self.readings.lock().unwrap().push(reading);
        if self.minutes.is_some_and(|m| seconds >= m * 60.0) {
            ctx.stop_training();
        }
        Ok(())
    }
}

/// Trains `model` (batches of 64, Adam, pixels scaled to 0..1) on `train` with every
/// writer on, in `dir`, for up to `epochs` (or `minutes`), and returns the readings.
fn soak<M: kiln::nn::Model<Cpu>>(
    model: M,
    (train, test): (impl Dataset + 'static, impl Dataset + 'static),
    (epochs, minutes): (usize, Option<f64>),
    dir: &Path,
    verbose: bool,
) -> Vec<Reading> {
    let mut trainer = Trainer::new(
        model,
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()),
    )
    .unwrap()
    .metrics([Metric::Accuracy]);
    let readings = Arc::new(Mutex::new(Vec::new()));
    let watch = Watch {
        plot: dir.join("curves.png"),
        started: Instant::now(),
        minutes,
        samples: train.len(),
        readings: Arc::clone(&readings),
        verbose,
    };
    let options = FitOptions::new(epochs, 64)
        .seed(5)
        .pipeline(Pipeline::new().scale(1.0 / 255.0))
        .validation_data(test)
        .verbose(Verbosity::Silent)
        .callback(ModelCheckpoint::new(dir.join("ckpt.safetensors")))
        .callback(CsvLogger::new(dir.join("log.csv")))
        .callback(TensorBoard::new(dir.join("tb")))
        .callback(watch);
    trainer.fit(train, options).unwrap();
    readings.lock().unwrap().clone()
}

/// A folder under the target directory, emptied.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Threads and open files equal from the second epoch on, and resident memory within
/// `slack_kb` of its value after epoch `settled`.
fn assert_flat(readings: &[Reading], settled: usize, slack_kb: u64) {
    assert!(readings.len() > settled + 1, "{readings:?}");
    let base = readings[settled];
    let last = readings[readings.len() - 1];
    println!(
        "soak: {} epochs in {:.0} s; resident {:.1} MB after epoch {}, {:.1} MB after the \
         last; threads {}, open files {}",
        readings.len(),
        last.seconds,
        base.resident_kb as f64 / 1024.0,
        base.epoch,
        last.resident_kb as f64 / 1024.0,
        last.threads,
        last.open_files
    );
    for r in &readings[1..] {
        assert_eq!(
            (r.threads, r.open_files),
            (readings[1].threads, readings[1].open_files),
            "threads or open files changed by epoch {}: {readings:?}",
            r.epoch
        );
    }
    let peak = readings[settled..]
        .iter()
        .map(|r| r.resident_kb)
        .max()
        .unwrap();
    assert!(
        peak <= base.resident_kb + slack_kb,
        "resident memory grew from {} kB after epoch {} to {peak} kB: {readings:?}",
        base.resident_kb,
        base.epoch
    );
}

#[test]
fn a_long_fit_holds_its_memory_threads_and_files_flat() {
    if process().is_none() {
        println!("skipped: a_long_fit_holds_its_memory_threads_and_files_flat: no /proc/self");
        return;
    }
    if let Ok(minutes) = std::env::var("KILN_SOAK_MINUTES") {
        let minutes: f64 = minutes
            .parse()
            .unwrap_or_else(|_| panic!("KILN_SOAK_MINUTES={minutes}: not a number"));
        return cifar_soak(minutes);
    }
    let (train, test) = kiln::data::mnist::embedded().unwrap();
    let train = train.select(&(0..1000).collect::<Vec<_>>()).unwrap();
    let test = test.select(&(0..250).collect::<Vec<_>>()).unwrap();
    let model = Digits::new(&Cpu::with_threads(2).unwrap(), 64, 1).unwrap();
    let readings = soak(
        model,
        (train, test),
        (40, None),
        &scratch("soak-digits"),
        false,
    );
    assert_eq!(readings.len(), 40);
    // After the allocator has settled (5 epochs), 40 epochs of checkpoints, logs,
    // event files and plots may not add 4 MB.
    assert_flat(&readings, 5, 4096);
}

/// The seed CNN on CIFAR-10 for `minutes`: the curve printed and written to
/// `target/soak.csv`.
fn cifar_soak(minutes: f64) {
    let dir = match std::env::var_os("KILN_SOAK_DATA") {
        Some(d) => PathBuf::from(d),
        None => {
            let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
            if !shared.is_dir() {
                println!(
                    "skipped: the CIFAR-10 soak: {} is absent and KILN_SOAK_DATA is not set",
                    shared.display()
                );
                return;
            }
            shared.join("cifar10")
        }
    };
    let threads = std::env::var("KILN_SOAK_THREADS").map_or(2, |t| t.parse().unwrap());
    let (train, test) = cifar::load_dir(&dir).unwrap();
    let model = SeedCnn::new(&Cpu::with_threads(threads).unwrap(), 64, 1).unwrap();
    let readings = soak(
        model,
        (train, test),
        (100_000, Some(minutes)),
        &scratch("soak-cifar"),
        true,
    );
    let mut csv = String::from("epoch,seconds,resident_kb,threads,open_files,samples_per_second\n");
    for r in &readings {
        csv.push_str(&format!(
            "{},{:.1},{},{},{},{:.1}\n",
            r.epoch, r.seconds, r.resident_kb, r.threads, r.open_files, r.samples_per_second
        ));
    }
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../soak.csv");
    std::fs::write(&path, csv).unwrap();
    println!("the curve: {}", path.display());
    // After the first epoch, an hour of checkpoints, logs and plots may not add 16 MB.
    assert_flat(&readings, 1, 16 * 1024);
}
