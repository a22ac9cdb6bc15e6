//! Data-parallel `fit`: two ranks with local batches of 32 give the History of one
//! process with batches of 64 and the same seed (the oracle), to rounding; a run
//! resumes from a checkpoint on another number of ranks; the ranks refuse to start
//! when they disagree on the model or the data.
//!
//! The ranks run as threads of this process over an in-memory communicator (no MPI
//! needed) and, with the feature `mpi` and `mpirun` on the path, as two processes
//! that `mpirun` starts from this test binary (`distributed_rank` below).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Barrier, Mutex};

use kiln::data::InMemory;
use kiln::distributed::{Communicator, World};
use kiln::prelude::*;
use kiln::train::History;

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
    /// The same network, one filter more.
    pub struct Wider {
        input: [28, 28, 1],
        conv: Conv2d(filters = 9, kernel = 3, stride = 2, activation = relu),
        pool: MaxPool2d(2),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

/// 1,200 training digits (a short last global batch of 48: 24 a rank) and 400 for
/// validation.
fn digits(train: usize) -> (InMemory, InMemory) {
    let (all, test) = kiln::data::mnist::embedded().unwrap();
    let train = all.select(&(0..train).collect::<Vec<_>>()).unwrap();
    let test = test.select(&(0..400).collect::<Vec<_>>()).unwrap();
    (train, test)
}

const EPOCHS: usize = 3;

/// Three epochs of the small CNN with batches of `batch`, seed 11, on `world` (or
/// alone).
fn train<M: Model<Cpu>>(
    world: Option<World>,
    batch: usize,
    samples: usize,
) -> kiln::Result<History> {
    train_accumulating::<M>(world, batch, 1, samples)
}

/// [`train`] with the gradients of `accumulate` batches an update.
fn train_accumulating<M: Model<Cpu>>(
    world: Option<World>,
    batch: usize,
    accumulate: usize,
    samples: usize,
) -> kiln::Result<History> {
    let run = Run {
        accumulate,
        ..Run::new(batch, samples)
    };
    train_run::<M>(world, &run)
}

/// What [`train_run`] trains.
struct Run {
    batch: usize,
    accumulate: usize,
    samples: usize,
    /// Epochs `[from, to)`.
    epochs: (usize, usize),
    /// A checkpoint to start from (its weights and optimizer state).
    resume: Option<std::path::PathBuf>,
    /// Where rank 0 saves a checkpoint at the end.
    save: Option<std::path::PathBuf>,
}

impl Run {
    fn new(batch: usize, samples: usize) -> Self {
        Self {
            batch,
            accumulate: 1,
            samples,
            epochs: (0, EPOCHS),
            resume: None,
            save: None,
        }
    }
}

/// The small CNN trained as `run` says, seed 11, on `world` (or alone).
fn train_run<M: Model<Cpu>>(world: Option<World>, run: &Run) -> kiln::Result<History> {
    let cpu = Cpu::with_threads(1)?;
    let mut model = M::new(&cpu, 64, 11)?;
    let mut optimizer = Optimizer::new(Adam::default());
    if let Some(path) = &run.resume {
        checkpoint::load(path, &mut model, Some(&mut optimizer))?;
    }
    let mut trainer = Trainer::new(model, Loss::sparse_categorical_crossentropy(), optimizer)?
        .metrics([Metric::Accuracy]);
    let (data, validation) = digits(run.samples);
    let mut options = FitOptions::new(run.epochs.1, run.batch)
        .initial_epoch(run.epochs.0)
        .seed(11)
        .pipeline(Pipeline::new().scale(1.0 / 255.0))
        .validation_data(validation)
        .accumulate(run.accumulate)
        .verbose(Verbosity::Silent);
    let root = world.as_ref().is_none_or(World::is_root);
    if let Some(world) = world {
        options = options.distributed(world);
    }
    let history = trainer.fit(data, options)?;
    if let Some(path) = run.save.as_ref().filter(|_| root) {
        let extra = checkpoint::CheckpointExtra {
            optimizer: Some(trainer.optimizer()),
            epoch: Some(run.epochs.1),
            ..Default::default()
        };
        checkpoint::save(path, trainer.model(), &extra)?;
    }
    Ok(history)
}

/// Each epoch's figures (not its time).
fn values(history: &History) -> Vec<Vec<(String, f64)>> {
    history.epochs.iter().map(|e| e.values.clone()).collect()
}

/// The largest difference between two histories' values, relative to the value, and
/// its place; the names and epochs must be the same.
fn largest_difference(want: &History, got: &History) -> (f64, String) {
    assert_eq!(want.epochs.len(), got.epochs.len());
    assert_eq!(want.names(), got.names());
    let mut worst = (0.0f64, String::new());
    for (w, g) in want.epochs.iter().zip(&got.epochs) {
        for ((name, a), (_, b)) in w.values.iter().zip(&g.values) {
            let d = (a - b).abs() / a.abs().max(1e-3);
            if d >= worst.0 {
                worst = (d, format!("epoch {} {name}: {a} against {b}", w.epoch));
            }
        }
    }
    worst
}

/// How close two ranks come to one process: the gradients' sums run in another
/// order (two halves of 32, then their sum), which Adam carries over 57 steps.
const TOLERANCE: f64 = 1e-6;

/// Ranks as threads: contributions left in shared slots, read once every rank has
/// written (a barrier), summed in rank order so that every rank gets the same bits.
struct Threads {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    ranks: usize,
    slots: Mutex<Vec<Vec<f64>>>,
    barrier: Barrier,
}

impl Threads {
    fn world(ranks: usize) -> impl Fn(usize) -> World + Clone + Send {
        let shared = Arc::new(Shared {
            ranks,
            slots: Mutex::new(vec![Vec::new(); ranks]),
            barrier: Barrier::new(ranks),
        });
        move |rank| {
            World::new(Threads {
                rank,
                shared: Arc::clone(&shared),
            })
        }
    }

    /// Every rank's `values`, in rank order.
    fn exchange(&self, values: Vec<f64>) -> Vec<Vec<f64>> {
        self.shared.slots.lock().unwrap()[self.rank] = values;
        self.shared.barrier.wait();
        let all = self.shared.slots.lock().unwrap().clone();
        self.shared.barrier.wait();
        all
    }

    fn sum(&self, values: Vec<f64>) -> Vec<f64> {
        let all = self.exchange(values);
        (0..all[0].len())
            .map(|i| all.iter().map(|v| v[i]).sum())
            .collect()
    }
}

impl Communicator for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.ranks
    }
    fn all_reduce_f32(&self, send: &[f32], recv: &mut [f32]) -> kiln::distributed::Result<()> {
        // Summed as f32, as MPI sums f32 buffers.
        let all = self.exchange(send.iter().map(|v| f64::from(*v)).collect());
        for (i, r) in recv.iter_mut().enumerate() {
            *r = all.iter().fold(0.0f32, |s, v| s + v[i] as f32);
        }
        Ok(())
    }
    fn all_reduce_f64(&self, send: &[f64], recv: &mut [f64]) -> kiln::distributed::Result<()> {
        recv.copy_from_slice(&self.sum(send.to_vec()));
        Ok(())
    }
    fn all_gather_u64(&self, value: u64, out: &mut [u64]) -> kiln::distributed::Result<()> {
        let all = self.exchange(vec![f64::from_bits(value)]);
        for (o, v) in out.iter_mut().zip(&all) {
            *o = v[0].to_bits();
        }
        Ok(())
    }
    fn broadcast_f32(&self, values: &mut [f32], root: usize) -> kiln::distributed::Result<()> {
        let all = self.exchange(values.iter().map(|v| f64::from(*v)).collect());
        for (v, r) in values.iter_mut().zip(&all[root]) {
            *v = *r as f32;
        }
        Ok(())
    }
}

/// Runs `f(world)` on each of `ranks` threads; their results in rank order.
fn on_threads<T: Send + 'static>(
    ranks: usize,
    f: impl Fn(World) -> T + Clone + Send + 'static,
) -> Vec<T> {
    let world = Threads::world(ranks);
    let handles: Vec<_> = (0..ranks)
        .map(|rank| {
            let (world, f) = (world.clone(), f.clone());
            std::thread::spawn(move || f(world(rank)))
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn two_ranks_of_32_train_as_one_process_of_64() {
    let reference = train::<Small>(None, 64, 1200).unwrap();
    let ranks = on_threads(2, |world| train::<Small>(Some(world), 32, 1200).unwrap());
    // Every rank holds the same History, bit for bit.
    assert_eq!(values(&ranks[0]), values(&ranks[1]));
    let (worst, place) = largest_difference(&reference, &ranks[0]);
    println!("two ranks against one process: largest relative difference {worst:.2e} ({place})");
    assert!(worst < TOLERANCE, "{worst:e} at {place}");
    // Sharding really split the work: one rank alone with 32 would differ.
    let alone = train::<Small>(None, 32, 1200).unwrap();
    assert!(largest_difference(&reference, &alone).0 > 100.0 * TOLERANCE);
}

#[test]
fn ranks_and_accumulation_multiply() {
    // 2 ranks x 2 micro-batches x 16 = 64; the epoch's last update is 48 samples, 24
    // a rank, as micro-batches of 16 and 8.
    let reference = train::<Small>(None, 64, 1200).unwrap();
    let ranks = on_threads(2, |world| {
        train_accumulating::<Small>(Some(world), 16, 2, 1200).unwrap()
    });
    let (worst, place) = largest_difference(&reference, &ranks[0]);
    assert!(worst < TOLERANCE, "{worst:e} at {place}");
}

#[test]
fn ranks_that_disagree_refuse_to_start() {
    // Different models: a fingerprint of the parameters' shapes tells them apart.
    let errors = on_threads(2, |world| {
        let result = if world.rank() == 0 {
            train::<Small>(Some(world), 32, 1200)
        } else {
            train::<Wider>(Some(world), 32, 1200)
        };
        result.err().map(|e| e.to_string()).unwrap_or_default()
    });
    for e in &errors {
        assert!(e.contains("the ranks disagree on the model"), "{e}");
        assert!(
            e.contains("ranks [0] have") && e.contains("ranks [1] have"),
            "{e}"
        );
    }
    // Different data set sizes.
    let errors = on_threads(2, |world| {
        let samples = 1200 + world.rank() * 64;
        let result = train::<Small>(Some(world), 32, samples);
        result.err().map(|e| e.to_string()).unwrap_or_default()
    });
    for e in &errors {
        assert!(e.contains("the training set's size"), "{e}");
        assert!(e.contains("0x4b0") && e.contains("0x4f0"), "{e}");
    }
}

#[test]
fn a_run_resumes_on_another_number_of_ranks() {
    // The oracle: three epochs alone with batches of 64.
    let reference = train::<Small>(None, 64, 1200).unwrap();
    let dir = std::env::temp_dir().join(format!("kiln-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (two, one) = (dir.join("two-ranks.st"), dir.join("one.st"));
    // Two epochs on two ranks of 32, rank 0 saving; the third alone with 64.
    let save = two.clone();
    on_threads(2, move |world| {
        let run = Run {
            epochs: (0, 2),
            save: Some(save.clone()),
            ..Run::new(32, 1200)
        };
        train_run::<Small>(Some(world), &run).unwrap()
    });
    let run = Run {
        epochs: (2, 3),
        resume: Some(two),
        ..Run::new(64, 1200)
    };
    let alone = train_run::<Small>(None, &run).unwrap();
    // Two epochs alone, saved; the third on two ranks of 32.
    let run = Run {
        epochs: (0, 2),
        save: Some(one.clone()),
        ..Run::new(64, 1200)
    };
    train_run::<Small>(None, &run).unwrap();
    let ranks = on_threads(2, move |world| {
        let run = Run {
            epochs: (2, 3),
            resume: Some(one.clone()),
            ..Run::new(32, 1200)
        };
        train_run::<Small>(Some(world), &run).unwrap()
    });
    for resumed in [&alone, &ranks[0]] {
        assert_eq!(resumed.epochs.len(), 1);
        assert_eq!(resumed.epochs[0].epoch, 2);
        let want = &reference.epochs[2].values;
        for ((name, a), (_, b)) in want.iter().zip(&resumed.epochs[0].values) {
            let d = (a - b).abs() / a.abs().max(1e-3);
            assert!(d < TOLERANCE, "epoch 2 {name}: {a} resumed as {b}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_world_of_one_trains_as_alone() {
    let alone = train::<Small>(None, 64, 600).unwrap();
    let single = train::<Small>(Some(World::single()), 64, 600).unwrap();
    assert_eq!(values(&alone), values(&single));
}

/// The path of the file a rank started by `mpirun` writes its History to.
const OUT: &str = "KILN_TEST_DISTRIBUTED_OUT";

/// One rank of the `mpirun` test below; does nothing unless that test started it.
#[test]
fn distributed_rank() {
    let Ok(out) = std::env::var(OUT) else {
        return;
    };
    let world = World::init().unwrap();
    let history = train::<Small>(Some(world.clone()), 32, 1200).unwrap();
    let text: String = history
        .epochs
        .iter()
        .flat_map(|e| {
            e.values
                .iter()
                .map(move |(n, v)| format!("{} {n} {v:e}\n", e.epoch))
        })
        .collect();
    std::fs::write(format!("{out}.{}", world.rank()), text).unwrap();
}

#[test]
fn two_mpi_processes_of_32_train_as_one_of_64() {
    if !cfg!(feature = "mpi") {
        println!("skipped: built without the feature `mpi`");
        return;
    }
    let Some(mut mpirun) = kiln::distributed::local_mpirun(2) else {
        println!("skipped: no mpirun on the path");
        return;
    };
    let dir = std::env::temp_dir().join(format!("kiln-distributed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("history");
    let status = mpirun
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "distributed_rank", "--test-threads=1"])
        .env(OUT, &out)
        .env("KILN_DISTRIBUTED_TIMEOUT", "120")
        .status()
        .unwrap();
    assert!(status.success(), "mpirun: {status}");
    let read = |rank: usize| std::fs::read_to_string(format!("{}.{rank}", out.display())).unwrap();
    let (rank0, rank1) = (read(0), read(1));
    assert_eq!(rank0, rank1, "the ranks' histories differ");
    let reference = train::<Small>(None, 64, 1200).unwrap();
    let mut worst = 0.0f64;
    let mut lines = rank0.lines();
    for e in &reference.epochs {
        for (name, want) in &e.values {
            let line = lines.next().unwrap();
            let mut parts = line.split(' ');
            assert_eq!(parts.next(), Some(e.epoch.to_string().as_str()));
            assert_eq!(parts.next(), Some(name.as_str()));
            let got: f64 = parts.next().unwrap().parse().unwrap();
            let d = (want - got).abs() / want.abs().max(1e-3);
            println!(
                "epoch {} {name}: one process {want}, two ranks {got}",
                e.epoch
            );
            worst = worst.max(d);
        }
    }
    assert!(lines.next().is_none());
    println!("two MPI ranks against one process: largest relative difference {worst:.2e}");
    assert!(worst < TOLERANCE, "{worst:e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
