//! The machinery behind the batcher: the shared state (one mutex, two condition
//! variables), the pool of batch buffers that cycle between the workers and the
//! consumer, and the filling of one batch.
//!
//! A worker first takes a free buffer, then claims the next batch index, so the
//! claimed batches are always the earliest ones not yet delivered and the batch the
//! consumer waits for is always being filled: no ordering can deadlock. Finished
//! batches wait in a ring indexed by their distance from the next one to deliver,
//! which delivers them in order whatever thread filled them.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::augment::{Augment, Geometry};
use crate::dataset::{Dataset, Input, Target, TargetKind};
use crate::error::{Error, Result};
use crate::preprocess::Affine;
use crate::rng::hash3;

/// The storage of one batch, reused batch after batch.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    pub inputs: Vec<f32>,
    pub labels: Vec<u32>,
    pub values: Vec<f32>,
    pub indices: Vec<usize>,
    pub len: usize,
}

/// What a batch's targets become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TargetOut {
    Labels,
    OneHot(usize),
    Values(usize),
}

/// Everything that stays fixed for the batcher's life.
#[derive(Debug)]
pub(crate) struct Plan {
    pub batch_size: usize,
    pub sample_len: usize,
    pub shape: Vec<usize>,
    pub geometry: Geometry,
    pub affine: Affine,
    pub augment: Augment,
    pub targets: TargetOut,
    pub seed: u64,
    pub shuffle: bool,
    pub drop_last: bool,
}

impl Plan {
    /// A fresh buffer for one batch.
    pub fn buffers(&self) -> Buffers {
        let width = match self.targets {
            TargetOut::Labels => 0,
            TargetOut::OneHot(w) | TargetOut::Values(w) => w,
        };
        let b = self.batch_size;
        Buffers {
            inputs: vec![0.0; b * self.sample_len],
            labels: vec![0; if width == 0 { b } else { 0 }],
            values: vec![0.0; b * width],
            indices: vec![0; b],
            len: 0,
        }
    }
}

/// One epoch's work.
#[derive(Debug)]
pub(crate) struct Job {
    pub generation: u64,
    pub epoch: u64,
    pub order: Vec<usize>,
    pub batches: usize,
}

/// A batch that a worker finished.
pub(crate) struct Filled {
    pub buffers: Buffers,
    pub result: Result<()>,
    pub batch: usize,
}

/// The state that workers and the consumer share.
pub(crate) struct State {
    pub job: Option<Arc<Job>>,
    pub generation: u64,
    /// The next batch index to claim.
    pub next: usize,
    /// The next batch index to deliver.
    pub delivered: usize,
    /// `ready[i]`: batch `delivered + i`, when finished.
    pub ready: VecDeque<Option<Filled>>,
    pub free: Vec<Buffers>,
    /// Batches of the current generation being filled.
    pub in_flight: usize,
    /// Workers that have started running.
    pub started: usize,
    pub shutdown: bool,
}

/// The lock and the two wake-up calls.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    /// Workers wait here for a buffer and a batch to fill.
    pub work: Condvar,
    /// The consumer waits here for the next batch.
    pub done: Condvar,
}

impl Shared {
    pub fn new(free: Vec<Buffers>) -> Self {
        Self {
            state: Mutex::new(State {
                job: None,
                generation: 0,
                next: 0,
                delivered: 0,
                ready: VecDeque::with_capacity(free.len() + 1),
                free,
                in_flight: 0,
                started: 0,
                shutdown: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        }
    }

    /// The lock; the state stays consistent even if a holder panicked (no code here
    /// panics while holding it), so a poisoned lock is taken as is.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns a buffer to the pool.
    pub fn give_back(&self, buffers: Buffers) {
        self.lock().free.push(buffers);
        self.work.notify_one();
    }
}

impl State {
    /// Claims the next batch if there is one and a free buffer for it.
    pub fn claim(&mut self) -> Option<(Arc<Job>, usize, Buffers)> {
        let job = self.job.as_ref()?;
        if self.next >= job.batches {
            return None;
        }
        let buffers = self.free.pop()?;
        let b = self.next;
        self.next += 1;
        self.in_flight += 1;
        Some((Arc::clone(job), b, buffers))
    }

    /// Stores a finished batch, or recycles it if its epoch was abandoned.
    pub fn finish(&mut self, generation: u64, filled: Filled) {
        if generation != self.generation {
            self.free.push(filled.buffers);
            return;
        }
        self.in_flight -= 1;
        let slot = filled.batch - self.delivered;
        while self.ready.len() <= slot {
            self.ready.push_back(None);
        }
        self.ready[slot] = Some(filled);
    }

    /// Starts `job`, recycling whatever the previous epoch left.
    pub fn start(&mut self, job: Option<Arc<Job>>) {
        self.generation += 1;
        self.job = job;
        self.next = 0;
        self.delivered = 0;
        self.in_flight = 0;
        while let Some(slot) = self.ready.pop_front() {
            if let Some(f) = slot {
                self.free.push(f.buffers);
            }
        }
    }
}

/// A worker thread's loop: claim, fill, store, until shut down.
pub(crate) fn run<D: Dataset>(data: &D, plan: &Plan, shared: &Shared) {
    let mut state = shared.lock();
    state.started += 1;
    shared.done.notify_all();
    loop {
        if state.shutdown {
            return;
        }
        let Some((job, b, mut buffers)) = state.claim() else {
            state = shared.work.wait(state).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        drop(state);
        let result = fill_guarded(data, plan, &job, b, &mut buffers);
        state = shared.lock();
        state.finish(
            job.generation,
            Filled {
                buffers,
                result,
                batch: b,
            },
        );
        shared.done.notify_one();
    }
}

/// [`fill`], with a panic in a [`Dataset`] implementation turned into an error.
pub(crate) fn fill_guarded<D: Dataset>(
    data: &D,
    plan: &Plan,
    job: &Job,
    b: usize,
    buf: &mut Buffers,
) -> Result<()> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fill(data, plan, job, b, buf)
    }))
    .unwrap_or(Err(Error::WorkerPanicked { batch: b }))
}

/// Fills `buf` with batch `b` of `job`.
fn fill<D: Dataset>(data: &D, plan: &Plan, job: &Job, b: usize, buf: &mut Buffers) -> Result<()> {
    let start = b * plan.batch_size;
    let end = (start + plan.batch_size).min(job.order.len());
    buf.len = end.saturating_sub(start);
    let s = plan.sample_len;
    for (slot, &index) in job.order[start..end].iter().enumerate() {
        let bits = hash3(plan.seed, job.epoch, index as u64);
        let sample = data.get_seeded(index, bits)?;
        if sample.input.len() != s {
            return Err(Error::Config(format!(
                "sample {index} has {} elements; the data set's shape {:?} needs {s}",
                sample.input.len(),
                plan.shape
            )));
        }
        let dst = &mut buf.inputs[slot * s..(slot + 1) * s];
        match &sample.input {
            Input::U8(v) => plan
                .augment
                .apply(plan.geometry, v, dst, &plan.affine, bits),
            Input::F32(v) => plan
                .augment
                .apply(plan.geometry, v, dst, &plan.affine, bits),
        }
        buf.indices[slot] = index;
        match (plan.targets, &sample.target) {
            (TargetOut::Labels, Target::Class(c)) => buf.labels[slot] = *c,
            (TargetOut::OneHot(n), Target::Class(c)) if (*c as usize) < n => {
                let row = &mut buf.values[slot * n..(slot + 1) * n];
                row.fill(0.0);
                row[*c as usize] = 1.0;
            }
            (TargetOut::Values(w), Target::Real(v)) if v.len() == w => {
                buf.values[slot * w..(slot + 1) * w].copy_from_slice(v);
            }
            (_, target) => {
                return Err(Error::Config(format!(
                    "sample {index} has target {target:?}, which does not fit the batches ({:?})",
                    plan.targets
                )));
            }
        }
    }
    Ok(())
}

/// What the targets of a data set of `kind` become.
pub(crate) fn target_out(kind: TargetKind, one_hot: bool) -> Result<TargetOut> {
    match (kind, one_hot) {
        (TargetKind::Classes(_), false) => Ok(TargetOut::Labels),
        (TargetKind::Classes(n), true) => Ok(TargetOut::OneHot(n)),
        (TargetKind::Real(w), false) => Ok(TargetOut::Values(w)),
        (TargetKind::Real(_), true) => Err(Error::Config(
            "one-hot targets need class labels, not real-valued targets".into(),
        )),
    }
}
