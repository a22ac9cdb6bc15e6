//! The MPI world: `MPI_COMM_WORLD` through the `mpi` crate. Each collective is the
//! non-blocking call (`MPI_Iallreduce`, ...) polled against a deadline, so that a rank
//! that died or hangs ends the run with an error instead of a silent wait. The ranks
//! that time out then call the roll on a communicator of their own (a message from
//! each to every other) to name the ranks that did not arrive.

use std::cell::Cell;
use std::io::Write as _;
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source};
use mpi::request::{Request, Scope, StaticScope};
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};

use crate::{Communicator, Error, Result};

/// The exit status of every rank when a collective times out.
const TIMEOUT_EXIT: i32 = 75;

/// How long a rank that timed out waits to hear from the other ranks that timed out
/// in the same collective (they started waiting at about the same time).
const ROLL_CALL: Duration = Duration::from_secs(3);

/// The largest tag every MPI accepts (the standard's lower bound on `MPI_TAG_UB`).
const TAG_BOUND: u64 = 32_767;

/// `MPI_COMM_WORLD`, with MPI initialised for as long as this lives.
pub(crate) struct Mpi {
    world: SimpleCommunicator,
    /// A copy of `world` for the roll call after a timeout, so that its messages
    /// cannot meet a collective's.
    side: SimpleCommunicator,
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
        let world = universe.world();
        Ok(Self {
            side: world.duplicate(),
            world,
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
        let rank = self.rank();
        let missing = match self.roll_call(call).as_slice() {
            [] => "every other rank answered the roll call, so the collective itself is stuck"
                .to_string(),
            [one] => format!("rank {one} did not arrive (it died, hangs, or waits elsewhere)"),
            many => format!("ranks {many:?} did not arrive (they died, hang, or wait elsewhere)"),
        };
        // One write, so that the lines of ranks sharing a terminal do not interleave.
        let line = format!(
            "kiln: rank {rank}: {op} (collective #{call}) waited {:.0} s for the other \
             ranks: {missing}; aborting the run (KILN_DISTRIBUTED_TIMEOUT sets the wait)\n",
            self.timeout.as_secs_f64()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
        self.world.abort(TIMEOUT_EXIT)
    }

    /// The ranks not waiting in collective `call`: every rank that timed out there
    /// sends each other rank a message and listens for theirs for [`ROLL_CALL`]; the
    /// ranks not heard from are dead, hung, or in another collective. The run ends
    /// next, so the messages' buffers are leaked and their requests forgotten.
    fn roll_call(&self, call: u64) -> Vec<usize> {
        let tag = i32::try_from(call % TAG_BOUND).unwrap_or(0);
        let me = self.world.rank();
        let token: &'static u64 = Box::leak(Box::new(call));
        let mut pending: Vec<(i32, Request<'static, u64, StaticScope>)> = Vec::new();
        for other in (0..self.world.size()).filter(|r| *r != me) {
            let process = self.side.process_at_rank(other);
            std::mem::forget(process.immediate_send_with_tag(StaticScope, token, tag));
            let answer: &'static mut u64 = Box::leak(Box::new(0));
            let request = process.immediate_receive_into_with_tag(StaticScope, answer, tag);
            pending.push((other, request));
        }
        let started = Instant::now();
        while !pending.is_empty() && started.elapsed() < ROLL_CALL {
            pending = pending
                .into_iter()
                .filter_map(|(other, request)| request.test().err().map(|r| (other, r)))
                .collect();
            std::thread::sleep(Duration::from_millis(1));
        }
        pending
            .into_iter()
            .map(|(other, request)| {
                std::mem::forget(request);
                usize::try_from(other).unwrap_or(0)
            })
            .collect()
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
