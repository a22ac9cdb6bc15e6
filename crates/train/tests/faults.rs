//! Fault injection: `fit` killed at random points, and a full disk or a read-only
//! folder under its checkpoints, logs and plots. Each fault hits a child process (this
//! test binary run again in a child mode); the parent checks what the child left.
//!
//! `KILN_FAULT_RUNS` sets the number of kills (8 by default; the figures in the README
//! come from 50) and `KILN_FAULT_SEED` their seed, so a failing run can be repeated.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kiln::data::{InMemory, Pipeline};
use kiln::prelude::*;
use kiln_train::callbacks::{Callback, Context, CsvLogger, ModelCheckpoint, TensorBoard};
use kiln_train::checkpoint;
use kiln_train::{EpochLog, History};

kiln::model! {
    /// A multilayer perceptron for the digits: 101,770 parameters, so that a
    /// checkpoint with Adam's state is 1.2 MB and its write takes a while.
    pub struct Mlp {
        input: [28, 28, 1],
        flat: Flatten,
        hidden: Dense(128, relu),
        out: Dense(10, softmax),
    }
}

const EPOCHS: usize = 5;
const CHECKPOINT: &str = "ckpt.safetensors";
const CSV: &str = "log.csv";
const PLOT: &str = "curves.png";
const TENSORBOARD: &str = "tb";
/// The child's mode: what to write, where, and for how many epochs.
const CHILD: &str = "KILN_FAULT_CHILD";

fn digits() -> (InMemory, InMemory) {
    let (train, test) = kiln::data::mnist::embedded().unwrap();
    let train = train.select(&(0..1500).collect::<Vec<_>>()).unwrap();
    let test = test.select(&(0..300).collect::<Vec<_>>()).unwrap();
    (train, test)
}

fn trainer() -> Trainer<Cpu, Mlp> {
    let model = Mlp::new(&Cpu::with_threads(1).unwrap(), 32, 11).unwrap();
    Trainer::new(
        model,
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()),
    )
    .unwrap()
    .metrics([Metric::Accuracy])
}

/// Plots the history after every epoch, as a program that watches its run does.
struct Plot(PathBuf);

impl<B: kiln::Backend, M: kiln::nn::Model<B>> Callback<B, M> for Plot {
    fn on_epoch_end(
        &mut self,
        _log: &EpochLog,
        ctx: &mut Context<'_, B, M>,
    ) -> kiln_train::Result<()> {
        kiln_train::plot_history(ctx.history, &self.0)
    }
}

/// Which files a run writes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Writer {
    Checkpoint,
    /// A checkpoint that warns and trains on when a write fails.
    CheckpointWarn,
    Csv,
    Plot,
    TensorBoard,
}

impl Writer {
    const ALL: [Self; 5] = [
        Self::Checkpoint,
        Self::CheckpointWarn,
        Self::Csv,
        Self::Plot,
        Self::TensorBoard,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Checkpoint => "checkpoint",
            Self::CheckpointWarn => "checkpoint-warn",
            Self::Csv => "csv",
            Self::Plot => "plot",
            Self::TensorBoard => "tensorboard",
        }
    }

    fn parse(name: &str) -> Self {
        *Self::ALL.iter().find(|w| w.name() == name).unwrap()
    }
}

/// Trains to `epochs` in `dir`, resuming from the checkpoint there when there is one,
/// with the callbacks of `writers`.
fn train_in(dir: &Path, epochs: usize, writers: &[Writer]) -> kiln_train::Result<History> {
    let (train, test) = digits();
    let mut t = trainer();
    let path = dir.join(CHECKPOINT);
    let mut initial_epoch = 0;
    if path.exists() {
        let (model, optimizer) = t.parts_mut();
        let info = checkpoint::load(&path, model, Some(optimizer))?;
        initial_epoch = info.epoch.unwrap() + 1;
    }
    let mut options: FitOptions<Cpu, Mlp> = FitOptions::new(epochs, 32)
        .seed(3)
        .pipeline(Pipeline::new().scale(1.0 / 255.0))
        .validation_data(test)
        .initial_epoch(initial_epoch)
        .verbose(Verbosity::Silent);
    for writer in writers {
        options = match writer {
            Writer::Checkpoint => options.callback(ModelCheckpoint::new(&path)),
            Writer::CheckpointWarn => {
                options.callback(ModelCheckpoint::new(&path).warn_on_error(true))
            }
            Writer::Csv => options.callback(CsvLogger::new(dir.join(CSV)).append(true)),
            Writer::Plot => options.callback(Plot(dir.join(PLOT))),
            Writer::TensorBoard => options.callback(TensorBoard::new(dir.join(TENSORBOARD))),
        };
    }
    t.fit(train, options)
}

/// The child: `KILN_FAULT_CHILD=<dir>;<epochs>;<writer>,<writer>...` trains and prints
/// `error: ...` on failure (exit code 2).
fn child(spec: &str) {
    let parts: Vec<&str> = spec.split(';').collect();
    let writers: Vec<Writer> = parts[2]
        .split(',')
        .filter(|w| !w.is_empty())
        .map(Writer::parse)
        .collect();
    match train_in(Path::new(parts[0]), parts[1].parse().unwrap(), &writers) {
        Ok(_) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

/// This test binary as a child running `test` with `spec`, started through `sh` so
/// that `shell` (limits) applies to it.
fn child_command(test: &str, spec: &str, shell: &str) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("{shell} exec \"$0\" \"$@\""))
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, spec)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// An epoch's number, named values and learning rate, as bits.
type EpochBits = (usize, Vec<(String, u64)>, u64);

/// A history's figures as bits: every value and the learning rate of every epoch
/// (not the seconds, which differ from run to run).
fn bits(history: &History) -> Vec<EpochBits> {
    history
        .epochs
        .iter()
        .map(|e| {
            let values = e
                .values
                .iter()
                .map(|(n, v)| (n.clone(), v.to_bits()))
                .collect();
            (e.epoch, values, e.learning_rate.to_bits())
        })
        .collect()
}

/// A small deterministic generator for the kill times (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

#[test]
fn sigkill_at_random_points_of_fit_never_harms_the_newest_checkpoint() {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec);
    }
    let runs: usize = std::env::var("KILN_FAULT_RUNS").map_or(8, |v| v.parse().unwrap());
    let seed: u64 = std::env::var("KILN_FAULT_SEED").map_or(21, |v| v.parse().unwrap());
    let test = "sigkill_at_random_points_of_fit_never_harms_the_newest_checkpoint";

    // The uninterrupted run, and how long a child takes to run it.
    let reference = scratch("kill-reference");
    let expected = bits(&train_in(&reference, EPOCHS, &[Writer::Checkpoint]).unwrap());
    let started = Instant::now();
    let spec = format!("{};{EPOCHS};checkpoint", reference.display());
    std::fs::remove_file(reference.join(CHECKPOINT)).unwrap();
    let status = child_command(test, &spec, "").status().unwrap();
    assert!(status.success());
    let span = started.elapsed().as_micros() as u64;
    std::fs::remove_dir_all(&reference).unwrap();

    let mut rng = Rng(seed.max(1));
    let (mut fresh, mut mid_write, mut finished) = (0, 0, 0);
    let dir = scratch("kill");
    for run in 0..runs {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let spec = format!("{};{EPOCHS};checkpoint", dir.display());
        let mut child = child_command(test, &spec, "").spawn().unwrap();
        let delay = rng.below(span);
        std::thread::sleep(Duration::from_micros(delay));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if status.success() {
            finished += 1;
        }
        if !temporaries(&dir).is_empty() {
            mid_write += 1;
        }

        // The newest complete checkpoint loads, and holds the reference's epochs.
        let path = dir.join(CHECKPOINT);
        let done = if path.exists() {
            let mut t = trainer();
            let (model, optimizer) = t.parts_mut();
            let info = checkpoint::load(&path, model, Some(optimizer))
                .unwrap_or_else(|e| panic!("run {run} (kill after {delay} us): {e}"));
            let done = info.epoch.unwrap() + 1;
            assert_eq!(bits(&info.history.unwrap()), expected[..done], "run {run}");
            done
        } else {
            fresh += 1;
            0
        };

        // Resuming from it gives the reference's history, bit for bit; its saves
        // remove what the killed write left.
        let history = train_in(&dir, EPOCHS, &[Writer::Checkpoint]).unwrap();
        assert_eq!(
            bits(&history),
            expected[done..],
            "run {run}, resumed at epoch {done}"
        );
        if done == EPOCHS {
            let mut t = trainer();
            let (model, optimizer) = t.parts_mut();
            checkpoint::load(&path, model, Some(optimizer)).unwrap();
            checkpoint::save(&path, t.model(), &kiln_train::CheckpointExtra::default()).unwrap();
        }
        assert_eq!(temporaries(&dir), Vec::<String>::new(), "run {run}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    println!(
        "{runs} kills (seed {seed}, within {span} us): {fresh} before the first checkpoint, \
         {mid_write} during a checkpoint write, {finished} after the run had finished"
    );
}

/// The faults of a folder, and how to undo them.
struct Fault<'a> {
    /// The test that runs the child.
    test: &'a str,
    /// Its scratch folders' names.
    name: &'a str,
    /// Shell commands run before the child (limits).
    shell: &'a str,
    /// Breaks the folder after the first epoch.
    prepare: &'a dyn Fn(&Path),
    /// Mends it before it is removed.
    restore: &'a dyn Fn(&Path),
    /// What the system's error says.
    expect: &'a str,
}

/// For each writer, a clean first epoch (with a checkpoint to resume from), then the
/// fault and a child that resumes with that writer alone: it must stop with an error
/// naming the writer's file (TensorBoard: warn and train on), leave no temporary
/// file, and leave what the first epoch saved intact.
fn fault_each_writer(fault: &Fault<'_>) {
    for writer in Writer::ALL {
        let dir = scratch(&format!("{}-{}", fault.name, writer.name()));
        let first = if matches!(writer, Writer::Checkpoint | Writer::CheckpointWarn) {
            vec![Writer::Checkpoint]
        } else {
            vec![Writer::Checkpoint, writer]
        };
        train_in(&dir, 1, &first).unwrap();
        let before: Vec<(PathBuf, Vec<u8>)> = walk(&dir)
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        (fault.prepare)(&dir);
        let spec = format!("{};{};{}", dir.display(), EPOCHS, writer.name());
        let output: Output = child_command(fault.test, &spec, fault.shell)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let file = match writer {
            Writer::Checkpoint | Writer::CheckpointWarn => CHECKPOINT,
            Writer::Csv => CSV,
            Writer::Plot => PLOT,
            Writer::TensorBoard => TENSORBOARD,
        };
        assert!(stderr.contains(file), "{writer:?}: {stderr}");
        let code = output.status.code();
        if matches!(writer, Writer::TensorBoard | Writer::CheckpointWarn) && code == Some(0) {
            // They stop writing with a warning, and training goes on.
            assert!(stderr.contains("warning"), "{writer:?}: {stderr}");
        } else {
            // A TensorBoard run folder that cannot be created stops `fit` at once.
            assert_ne!(writer, Writer::CheckpointWarn, "{stderr}");
            assert_eq!(code, Some(2), "{writer:?}: {stderr}");
            assert!(stderr.contains(fault.expect), "{writer:?}: {stderr}");
        }
        println!("{} / {writer:?}: {}", fault.name, stderr.trim());
        for (path, bytes) in &before {
            let now = std::fs::read(path).unwrap();
            // The CSV log is appended to: its earlier lines stay as they were.
            assert!(
                now.starts_with(bytes),
                "{writer:?}: {} was changed",
                path.display()
            );
            if path.ends_with(CHECKPOINT) || path.ends_with(PLOT) {
                assert_eq!(&now, bytes, "{writer:?}: {} was changed", path.display());
            }
        }
        assert_eq!(temporaries(&dir), Vec::<String>::new(), "{writer:?}");
        (fault.restore)(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_full_disk_stops_fit_with_an_error_and_damages_nothing_saved() {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec);
    }
    // No file may grow: writes fail with EFBIG, as on a full disk, once the signal
    // that would kill the process is ignored (ignored signals stay ignored across
    // `exec`).
    fault_each_writer(&Fault {
        test: "a_full_disk_stops_fit_with_an_error_and_damages_nothing_saved",
        name: "full",
        shell: "trap '' XFSZ; ulimit -f 0;",
        prepare: &|_| {},
        restore: &|_| {},
        expect: "File too large",
    });
}

/// Whether this process runs as root, which permissions do not stop.
fn root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?}");
}

/// Makes `dir` and everything under it read-only: a read-only bind mount for root,
/// else permissions.
fn read_only(dir: &Path) {
    let d = dir.to_str().unwrap();
    if root() {
        run("mount", &["--bind", d, d]);
        run("mount", &["-o", "remount,bind,ro", d]);
    } else {
        run("chmod", &["-R", "a-w", d]);
    }
}

fn writable(dir: &Path) {
    let d = dir.to_str().unwrap();
    if root() {
        run("umount", &[d]);
    } else {
        run("chmod", &["-R", "u+w", d]);
    }
}

#[test]
fn a_read_only_folder_stops_fit_with_an_error_and_damages_nothing_saved() {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec);
    }
    fault_each_writer(&Fault {
        test: "a_read_only_folder_stops_fit_with_an_error_and_damages_nothing_saved",
        name: "read-only",
        shell: "",
        prepare: &read_only,
        restore: &writable,
        expect: if root() {
            "Read-only file system"
        } else {
            "Permission denied"
        },
    });
}
