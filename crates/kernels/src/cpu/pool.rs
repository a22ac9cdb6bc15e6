//! A small persistent thread pool whose `run` never allocates.
//!
//! rayon would do the splitting, but a call from outside its pool injects the job into
//! a global queue that allocates a block every few dozen calls, which breaks kiln's
//! allocation-free training step. This pool holds one job slot: `run` publishes a
//! borrowed closure, the caller and the workers take task indices from an atomic
//! counter, and `run` returns when every task is done.
//!
//! Waiting: a training step runs dozens of ops back to back, and waking a thread
//! through the OS costs 5 to 40 µs each time. So a worker that finishes a job spins on
//! an atomic copy of the job counter for up to [`SPIN`] before it parks on a condvar,
//! and `run` waits for the workers' last tasks spinning, then yielding, for up to
//! [`WAIT`] before it sleeps; the condvars are signalled only when someone sleeps on
//! them. An idle pool parks within [`SPIN`].

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker spins for the next job before it parks: long enough to cover the
/// gap between two ops of a training step, short enough that an idle pool costs
/// nothing.
const SPIN: Duration = Duration::from_micros(50);

/// How long `run` waits for the workers' last tasks before it sleeps: past [`SPIN`] it
/// yields its core between checks, in case a preempted worker needs it. Only spent
/// while a job runs, so an idle pool does not pay it.
const WAIT: Duration = Duration::from_millis(1);

/// A task body: `(task index, worker index)`. Worker 0 is the calling thread.
pub type Task<'a> = dyn Fn(usize, usize) + Sync + 'a;

/// The job being run, with its lifetime erased; valid while `run` is inside its call.
#[derive(Clone, Copy)]
struct JobPtr(*const Task<'static>);

// SAFETY: the pointee is `Sync` and `run` keeps it alive until every worker is done
// with it (it waits for `active == 0` before returning).
unsafe impl Send for JobPtr {}

struct State {
    generation: u64,
    job: Option<JobPtr>,
    tasks: usize,
    panicked: bool,
    shutdown: bool,
    /// Workers parked on `wake`.
    parked: usize,
    /// Whether `run` sleeps on `done`.
    caller_parked: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    done: Condvar,
    next: AtomicUsize,
    /// `State::generation`, readable without the lock by spinning workers.
    generation: AtomicU64,
    /// Workers that have not finished the current job.
    active: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a task is caught and re-raised by `run`; the state stays valid.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits until `ready()` holds or `limit` has passed, spinning for the first [`SPIN`]
/// and yielding the core between checks after that; returns `ready()`.
fn spin_until(ready: impl Fn() -> bool, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        // Reading the clock costs about as much as a few `pause`s: check it now and
        // then.
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        let waited = start.elapsed();
        if waited >= limit {
            return ready();
        }
        if waited >= SPIN {
            std::thread::yield_now();
        }
    }
}

/// A fixed set of worker threads plus the caller.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    // Serialises concurrent `run` calls from different threads.
    run_lock: Mutex<()>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads())
            .finish()
    }
}

impl ThreadPool {
    /// A pool of `threads` threads in all: the caller of `run` and `threads - 1`
    /// workers.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                generation: 0,
                job: None,
                tasks: 0,
                panicked: false,
                shutdown: false,
                parked: 0,
                caller_parked: false,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            next: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            active: AtomicUsize::new(0),
        });
        let mut pool = Self {
            shared,
            workers: Vec::new(),
            run_lock: Mutex::new(()),
        };
        pool.workers
            .try_reserve_exact(threads - 1)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
        for id in 1..threads {
            let shared = Arc::clone(&pool.shared);
            // On an error, dropping `pool` stops and joins the workers started so far.
            let handle = std::thread::Builder::new()
                .name(format!("kiln-cpu-{id}"))
                .spawn(move || worker(&shared, id))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// The number of threads that run tasks, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(task, worker)` for every `task` in `0..tasks` and returns when all are
    /// done. Tasks are handed out dynamically; `worker` is in `0..threads()`, so a task
    /// may index per-worker scratch with it. Must not be called from inside a task.
    pub fn run(&self, tasks: usize, f: &Task<'_>) {
        if tasks == 0 {
            return;
        }
        if tasks == 1 || self.workers.is_empty() {
            for t in 0..tasks {
                f(t, 0);
            }
            return;
        }
        let _serial = lock(&self.run_lock);
        let shared = &*self.shared;
        // SAFETY: only the lifetime is erased; this function does not return before
        // every worker has finished with the job (`active == 0` below).
        let job =
            JobPtr(unsafe { std::mem::transmute::<*const Task<'_>, *const Task<'static>>(f) });
        let (generation, parked) = {
            let mut st = lock(&shared.state);
            shared.next.store(0, Ordering::Relaxed);
            shared.active.store(self.workers.len(), Ordering::Relaxed);
            st.job = Some(job);
            st.tasks = tasks;
            st.panicked = false;
            st.generation = st.generation.wrapping_add(1);
            (st.generation, st.parked)
        };
        // Published after the lock is released, so that a spinning worker that sees it
        // finds the lock free. A parked worker checks `State::generation` instead.
        shared.generation.store(generation, Ordering::Release);
        if parked > 0 {
            shared.wake.notify_all();
        }
        let caller = catch_unwind(AssertUnwindSafe(|| take_tasks(shared, f, tasks, 0)));
        let finished = || shared.active.load(Ordering::Acquire) == 0;
        let mut st = if spin_until(finished, WAIT) {
            lock(&shared.state)
        } else {
            let mut st = lock(&shared.state);
            st.caller_parked = true;
            // A worker's last decrement happens either before this check or before it
            // takes the lock to look at `caller_parked`, which `wait` releases.
            while !finished() {
                st = shared.done.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            st.caller_parked = false;
            st
        };
        st.job = None;
        let worker_panicked = st.panicked;
        drop(st);
        if let Err(payload) = caller {
            resume_unwind(payload);
        }
        if worker_panicked {
            // Only a bug in kiln's own kernels can get here: tasks do not panic on
            // user input.
            resume_unwind(Box::new("a kiln CPU kernel task panicked"));
        }
    }
}

fn take_tasks(shared: &Shared, f: &Task<'_>, tasks: usize, worker: usize) {
    loop {
        let t = shared.next.fetch_add(1, Ordering::Relaxed);
        if t >= tasks {
            break;
        }
        f(t, worker);
    }
}

fn worker(shared: &Shared, id: usize) {
    let mut seen = 0u64;
    loop {
        spin_until(|| shared.generation.load(Ordering::Acquire) != seen, SPIN);
        let (job, tasks) = {
            let mut st = lock(&shared.state);
            while st.generation == seen && !st.shutdown {
                st.parked += 1;
                st = shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
                st.parked -= 1;
            }
            if st.shutdown {
                return;
            }
            seen = st.generation;
            match st.job {
                Some(job) => (job, st.tasks),
                None => continue,
            }
        };
        // SAFETY: `run` keeps the closure alive until `active` drops to zero, which
        // happens only after this worker is done with it.
        let f: &Task<'_> = unsafe { &*job.0 };
        let result = catch_unwind(AssertUnwindSafe(|| take_tasks(shared, f, tasks, id)));
        if result.is_err() {
            // Before the decrement, so that `run` sees it.
            lock(&shared.state).panicked = true;
        }
        if shared.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last worker out wakes `run` if it went to sleep; see there.
            let st = lock(&shared.state);
            if st.caller_parked {
                shared.done.notify_one();
            }
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            // A worker that panicked outside a task has nothing left to report.
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[test]
    fn every_task_runs_once() {
        let pool = ThreadPool::new(3).unwrap();
        for tasks in [0, 1, 2, 7, 100] {
            let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
            pool.run(tasks, &|t, w| {
                assert!(w < 3);
                hits[t].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn runs_follow_each_other_with_and_without_idle_gaps() {
        // Back to back (the workers still spin), after a gap longer than their spin
        // (they park), and with a task that outlasts the caller's wait (it parks on
        // `done`).
        let pool = ThreadPool::new(3).unwrap();
        for i in 0..300 {
            if i % 3 == 1 {
                std::thread::sleep(SPIN * 4);
            }
            let count = AtomicUsize::new(0);
            let slept = AtomicBool::new(false);
            pool.run(5, &|_, worker| {
                if i % 5 == 2 && worker != 0 && !slept.swap(true, Ordering::Relaxed) {
                    std::thread::sleep(WAIT * 2);
                }
                count.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(count.load(Ordering::Relaxed), 5, "run {i}");
        }
    }

    #[test]
    fn a_panicking_task_is_reported_to_the_caller() {
        let pool = ThreadPool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(8, &|t, _| {
                if t == 5 {
                    panic!("boom");
                }
            })
        }));
        assert!(r.is_err());
        // The pool still works afterwards.
        let count = AtomicUsize::new(0);
        pool.run(4, &|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 4);
    }
}
