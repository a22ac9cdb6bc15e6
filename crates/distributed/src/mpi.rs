//! The MPI world: `MPI_COMM_WORLD` through the `mpi` crate. Each collective is the
//! non-blocking call (`MPI_Iallreduce`, ...) polled against a deadline, so that a rank
//! that died or hangs ends the run with an error instead of a silent wait.

use std::cell::Cell;
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::request::{Request, Scope};
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};

use crate::{Communicator, Error, Result};

/// The exit status of every rank when a collective times out.
const TIMEOUT_EXIT: i32 = 75;

/// `MPI_COMM_WORLD`, with MPI initialised for as long as this lives.
pub(crate) struct Mpi {
    world: SimpleCommunicator,
    timeout: Duration,
    /// Collectives started so far, to name the one that timed out.
    calls: Cell<u64>,
    /// Finalises MPI when dropped, after `world`.
    _universe: Universe,
}

impl Mpi {
    /// Initialises MPI (once a process); only the calling thread makes MPI calls.
    pub(crate) fn init(timeout: Duration) -> Result<Self> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or_else(|| Error::Init("MPI was initialised already in this process".into()))?;
        Ok(Self {
            world: universe.world(),
            timeout,
            calls: Cell::new(0),
            _universe: universe,
        })
    }

    /// Polls `request` until it completes; past the timeout, prints what waited for
    /// what and aborts every rank (a collective cannot be cancelled, and the ranks
    /// that did arrive would wait for ever).
    fn finish<'a, D: ?Sized, S: Scope<'a>>(&self, op: &str, mut request: Request<'a, D, S>) {
        let call = self.calls.get();
        self.calls.set(call + 1);
        let started = Instant::now();
        let mut spins = 0u32;
        loop {
            match request.test() {
                Ok(_) => return,
                Err(r) => request = r,
            }
            if started.elapsed() > self.timeout {
                self.abort(op, call);
            }
            // Spin first (a step's all-reduce waits microseconds to milliseconds),
            // then leave the core to the other ranks sharing it.
            spins = spins.saturating_add(1);
            if spins < 1_000 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    fn abort(&self, op: &str, call: u64) -> ! {
        let (rank, size) = (self.world.rank(), self.world.size());
        let missing = if size == 2 {
            format!("rank {} died or hangs", 1 - rank)
        } else {
            format!(
                "another of the {size} ranks died or hangs (the ranks that report this \
                 same timeout arrived; the others did not)"
            )
        };
        eprintln!(
            "kiln: rank {rank}: {op} (collective #{call}) waited {:.0} s for the other \
             ranks: {missing}; aborting the run (KILN_DISTRIBUTED_TIMEOUT sets the wait)",
            self.timeout.as_secs_f64()
        );
        self.world.abort(TIMEOUT_EXIT)
    }
}

impl Communicator for Mpi {
    fn rank(&self) -> usize {
        usize::try_from(self.world.rank()).unwrap_or(0)
    }

    fn size(&self) -> usize {
        usize::try_from(self.world.size()).unwrap_or(1)
    }

    fn all_reduce_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        mpi::request::scope(|scope| {
            let request =
                self.world
                    .immediate_all_reduce_into(scope, send, recv, SystemOperation::sum());
            self.finish("all-reduce", request);
        });
        Ok(())
    }

    fn all_reduce_f64(&self, send: &[f64], recv: &mut [f64]) -> Result<()> {
        mpi::request::scope(|scope| {
            let request =
                self.world
                    .immediate_all_reduce_into(scope, send, recv, SystemOperation::sum());
            self.finish("all-reduce", request);
        });
        Ok(())
    }

    fn all_gather_u64(&self, value: u64, out: &mut [u64]) -> Result<()> {
        if out.len() != self.size() {
            return Err(Error::Length {
                op: "all_gather_u64",
                send: self.size(),
                recv: out.len(),
            });
        }
        mpi::request::scope(|scope| {
            let request = self.world.immediate_all_gather_into(scope, &value, out);
            self.finish("all-gather", request);
        });
        Ok(())
    }

    fn broadcast_f32(&self, values: &mut [f32], root: usize) -> Result<()> {
        let root = i32::try_from(root).map_err(|_| Error::Length {
            op: "broadcast_f32",
            send: root,
            recv: self.size(),
        })?;
        mpi::request::scope(|scope| {
            let request = self
                .world
                .process_at_rank(root)
                .immediate_broadcast_into(scope, values);
            self.finish("broadcast", request);
        });
        Ok(())
    }
}
