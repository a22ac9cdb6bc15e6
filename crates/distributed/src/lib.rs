//! The collectives of kiln's data-parallel training: a [`World`] of processes, one per
//! device, that sum buffers across themselves (all-reduce), agree on values at
//! start-up and broadcast the first weights.
//!
//! A `World` is a world of one ([`World::single`], no MPI needed: every collective is
//! the identity) or, with the cargo feature `mpi`, the processes that `mpirun` or
//! `srun` started ([`World::init`]). The training loop takes one through
//! `FitOptions::distributed` in `kiln-train`.
//!
//! ```
//! use kiln_distributed::World;
//!
//! let world = World::single();
//! assert_eq!((world.rank(), world.size()), (0, 1));
//! let (send, mut sum) = ([1.0f32, 2.0], [0.0f32; 2]);
//! world.all_reduce_f32(&send, &mut sum)?;
//! assert_eq!(sum, send);
//! world.check_same("the parameter shapes", 0x5eed)?;
//! # Ok::<(), kiln_distributed::Error>(())
//! ```

#[cfg(feature = "mpi")]
mod mpi;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What can go wrong between processes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A distributed run was asked for, but no MPI launcher started this process.
    #[error(
        "this program was asked to run distributed but was not started by an MPI launcher \
         (no OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK in its environment): launch it as \
         `mpirun -np N {program} ...` (or `srun`), or drop --distributed"
    )]
    NotLaunched {
        /// The program's name.
        program: String,
    },
    /// kiln was built without the `mpi` feature.
    #[error(
        "this program was built without MPI: rebuild it with the cargo feature `mpi` \
         (Debian needs libopenmpi-dev and libclang-dev)"
    )]
    MpiNotCompiled,
    /// MPI was initialised already, or could not be.
    #[error("MPI could not be initialised: {0}")]
    Init(String),
    /// The ranks disagree on something that must be the same everywhere.
    #[error("the ranks disagree on {what}: {detail}")]
    Mismatch {
        /// What was compared.
        what: String,
        /// Each rank's value, grouped.
        detail: String,
    },
    /// Buffers of different lengths were handed to a collective.
    #[error("{op}: {send} values to send but room for {recv}")]
    Length {
        /// The collective.
        op: &'static str,
        /// Values sent.
        send: usize,
        /// Values the result holds.
        recv: usize,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// The collectives a world of processes offers. Every process calls each one in the
/// same order with buffers of the same length; a call blocks until all have made it.
pub trait Communicator {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn size(&self) -> usize;
    /// `recv` = the element-wise sum of every rank's `send`.
    fn all_reduce_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()>;
    /// `recv` = the element-wise sum of every rank's `send`.
    fn all_reduce_f64(&self, send: &[f64], recv: &mut [f64]) -> Result<()>;
    /// `out[r]` = rank `r`'s `value`; `out` holds `size()` values.
    fn all_gather_u64(&self, value: u64, out: &mut [u64]) -> Result<()>;
    /// Every rank's `values` become `root`'s.
    fn broadcast_f32(&self, values: &mut [f32], root: usize) -> Result<()>;
}

/// The processes that train together: a shared handle on a [`Communicator`], which
/// counts the time this rank spends in all-reduces ([`World::stats`]).
#[derive(Clone)]
pub struct World(Rc<Counted>);

/// A communicator and what its all-reduces cost so far.
struct Counted {
    communicator: Box<dyn Communicator>,
    stats: Cell<Stats>,
}

/// What this rank's all-reduces have cost: their number, the values they summed and
/// the time spent in them (the transfer and the wait for the slowest rank).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// All-reduces made.
    pub all_reduces: u64,
    /// Bytes summed (each rank's contribution).
    pub bytes: u64,
    /// Seconds spent in them.
    pub seconds: f64,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "World(rank {} of {})", self.rank(), self.size())
    }
}

/// The longest a collective waits for the other ranks before the run is aborted, unless
/// `KILN_DISTRIBUTED_TIMEOUT` (seconds) says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

impl World {
    /// A world of one process: every collective gives back what it is given.
    pub fn single() -> Self {
        Self::new(Single)
    }

    /// The world of the processes that an MPI launcher (`mpirun`, `mpiexec`, `srun`)
    /// started, MPI initialised once for the process. A collective that waits longer
    /// than [`DEFAULT_TIMEOUT`] (or `KILN_DISTRIBUTED_TIMEOUT` seconds) for the other
    /// ranks ends the whole run with an error naming the collective and the ranks
    /// that did not arrive.
    ///
    /// An error where no launcher started the process (a `--distributed` program run
    /// on its own) or kiln was built without the feature `mpi`.
    pub fn init() -> Result<Self> {
        let timeout = std::env::var("KILN_DISTRIBUTED_TIMEOUT")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64);
        Self::init_with_timeout(timeout)
    }

    /// [`World::init`] with a collective's longest wait.
    pub fn init_with_timeout(timeout: Duration) -> Result<Self> {
        if !launched_by_mpi() {
            let program = std::env::args().next().unwrap_or_else(|| "program".into());
            return Err(Error::NotLaunched { program });
        }
        #[cfg(feature = "mpi")]
        {
            Ok(Self::new(mpi::Mpi::init(timeout)?))
        }
        #[cfg(not(feature = "mpi"))]
        {
            let _ = timeout;
            Err(Error::MpiNotCompiled)
        }
    }

    /// A world of any communicator.
    pub fn new(communicator: impl Communicator + 'static) -> Self {
        Self(Rc::new(Counted {
            communicator: Box::new(communicator),
            stats: Cell::new(Stats::default()),
        }))
    }

    fn communicator(&self) -> &dyn Communicator {
        &*self.0.communicator
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> usize {
        self.communicator().rank()
    }

    /// The number of processes.
    pub fn size(&self) -> usize {
        self.communicator().size()
    }

    /// What this rank's all-reduces have cost since the world began (or since
    /// [`World::reset_stats`]).
    pub fn stats(&self) -> Stats {
        self.0.stats.get()
    }

    /// Starts counting [`World::stats`] from zero.
    pub fn reset_stats(&self) {
        self.0.stats.set(Stats::default());
    }

    /// Runs `f`, an all-reduce of `bytes`, and counts it.
    fn counted<T>(&self, bytes: usize, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        let mut stats = self.0.stats.get();
        stats.all_reduces += 1;
        stats.bytes += bytes as u64;
        stats.seconds += started.elapsed().as_secs_f64();
        self.0.stats.set(stats);
        out
    }

    /// Whether this is rank 0, the one that prints and writes files.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// `recv` = the element-wise sum of every rank's `send`.
    pub fn all_reduce_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        check_lengths("all_reduce_f32", send.len(), recv.len())?;
        self.counted(std::mem::size_of_val(send), || {
            self.communicator().all_reduce_f32(send, recv)
        })
    }

    /// `recv` = the element-wise sum of every rank's `send`.
    pub fn all_reduce_f64(&self, send: &[f64], recv: &mut [f64]) -> Result<()> {
        check_lengths("all_reduce_f64", send.len(), recv.len())?;
        self.counted(std::mem::size_of_val(send), || {
            self.communicator().all_reduce_f64(send, recv)
        })
    }

    /// The sum over ranks of each of `values`, in place (for small host figures:
    /// it allocates a copy).
    pub fn sum_f64(&self, values: &mut [f64]) -> Result<()> {
        let send = values.to_vec();
        self.all_reduce_f64(&send, values)
    }

    /// Every rank's `value`, in rank order.
    pub fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        let mut out = vec![0; self.size()];
        self.communicator().all_gather_u64(value, &mut out)?;
        Ok(out)
    }

    /// Every rank's `values` become `root`'s.
    pub fn broadcast_f32(&self, values: &mut [f32], root: usize) -> Result<()> {
        self.communicator().broadcast_f32(values, root)
    }

    /// An error unless every rank has the same `value` for `what` (a fingerprint of the
    /// model, a data set's size), naming which ranks hold which value: what would
    /// otherwise deadlock or silently diverge later is caught at start-up.
    pub fn check_same(&self, what: &str, value: u64) -> Result<()> {
        let values = self.all_gather_u64(value)?;
        if values.iter().all(|v| *v == values[0]) {
            return Ok(());
        }
        let mut groups: Vec<(u64, Vec<usize>)> = Vec::new();
        for (rank, v) in values.iter().enumerate() {
            match groups.iter_mut().find(|(g, _)| g == v) {
                Some((_, ranks)) => ranks.push(rank),
                None => groups.push((*v, vec![rank])),
            }
        }
        let detail = groups
            .iter()
            .map(|(v, ranks)| format!("ranks {ranks:?} have {v:#x}"))
            .collect::<Vec<_>>()
            .join(", ");
        Err(Error::Mismatch {
            what: what.to_string(),
            detail,
        })
    }
}

fn check_lengths(op: &'static str, send: usize, recv: usize) -> Result<()> {
    if send == recv {
        Ok(())
    } else {
        Err(Error::Length { op, send, recv })
    }
}

/// Whether an MPI launcher started this process: Open MPI's `mpirun`, MPICH's Hydra
/// (and Slurm's PMI) and PMIx (`srun --mpi=pmix`) each leave a variable.
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// `mpirun -np ranks` on this machine, or `None` where no `mpirun` is on the path: the
/// launcher for a test or a benchmark that starts its own ranks. Open MPI's is told
/// that the ranks may outnumber the cores and may run as root (as in a container).
pub fn local_mpirun(ranks: usize) -> Option<std::process::Command> {
    let version = std::process::Command::new("mpirun")
        .arg("--version")
        .output()
        .ok()?;
    let mut mpirun = std::process::Command::new("mpirun");
    if String::from_utf8_lossy(&version.stdout).contains("Open MPI") {
        mpirun
            .arg("--oversubscribe")
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    mpirun.args(["-np", &ranks.to_string()]);
    Some(mpirun)
}

/// A world of one process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Communicator for Single {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        recv.copy_from_slice(send);
        Ok(())
    }

    fn all_reduce_f64(&self, send: &[f64], recv: &mut [f64]) -> Result<()> {
        recv.copy_from_slice(send);
        Ok(())
    }

    fn all_gather_u64(&self, value: u64, out: &mut [u64]) -> Result<()> {
        out.fill(value);
        Ok(())
    }

    fn broadcast_f32(&self, _values: &mut [f32], _root: usize) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two ranks that disagree, as seen from rank 0.
    struct Disagreeing;

    impl Communicator for Disagreeing {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            3
        }
        fn all_reduce_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
            Single.all_reduce_f32(send, recv)
        }
        fn all_reduce_f64(&self, send: &[f64], recv: &mut [f64]) -> Result<()> {
            Single.all_reduce_f64(send, recv)
        }
        fn all_gather_u64(&self, value: u64, out: &mut [u64]) -> Result<()> {
            out.copy_from_slice(&[value, value, value + 1]);
            Ok(())
        }
        fn broadcast_f32(&self, _values: &mut [f32], _root: usize) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_mismatch_names_the_ranks() {
        let world = World::new(Disagreeing);
        let e = world.check_same("the data set's size", 10).err();
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("ranks [0, 1] have 0xa"), "{text}");
        assert!(text.contains("ranks [2] have 0xb"), "{text}");
    }

    #[test]
    fn all_reduces_are_counted() {
        let world = World::single();
        let mut recv = [0.0f32; 3];
        world
            .all_reduce_f32(&[1.0; 3], &mut recv)
            .unwrap_or_default();
        world.sum_f64(&mut [1.0]).unwrap_or_default();
        let stats = world.stats();
        assert_eq!((stats.all_reduces, stats.bytes), (2, 12 + 8));
        world.reset_stats();
        assert_eq!(world.stats(), Stats::default());
    }

    #[test]
    fn init_outside_a_launcher_says_how_to_launch() {
        if launched_by_mpi() {
            return;
        }
        let e = World::init()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("mpirun -np N"), "{e}");
    }

    #[test]
    fn lengths_must_match() {
        let world = World::single();
        let mut recv = [0.0f32; 2];
        assert!(matches!(
            world.all_reduce_f32(&[1.0; 3], &mut recv),
            Err(Error::Length {
                send: 3,
                recv: 2,
                ..
            })
        ));
    }
}
