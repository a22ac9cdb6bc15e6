//! Batching: every epoch a permutation of the samples from (seed, epoch), cut into
//! batches that background threads fill ahead of the training step (augmented,
//! converted to `f32` and preprocessed), delivered in order as contiguous buffers
//! ready for one upload.
//!
//! The batches of an epoch are the same for the same seed whatever the number of
//! worker threads: the permutation depends only on (seed, epoch), and each sample's
//! augmentation only on (seed, epoch, sample index). Batch buffers cycle through a
//! fixed pool, so steady-state batching of an in-memory data set does not allocate.

mod augment;
mod worker;

use std::sync::Arc;
use std::thread::JoinHandle;

pub use augment::Augment;
use worker::{Buffers, Job, Plan, Shared, TargetOut};

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::preprocess::Pipeline;

/// How to batch a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchOptions {
    /// Samples per batch.
    pub batch_size: usize,
    /// Shuffle every epoch (default); otherwise batches follow the data set's order.
    pub shuffle: bool,
    /// The seed of the shuffling and of the augmentation.
    pub seed: u64,
    /// Drop the last batch of an epoch when it is short.
    pub drop_last: bool,
    /// Background threads that fill batches; 0 fills them on the calling thread.
    pub workers: usize,
    /// Batches prepared ahead of the one being consumed (the queue's bound).
    pub prefetch: usize,
    /// Image augmentation.
    pub augment: Augment,
    /// Preprocessing applied while converting each sample to `f32`.
    pub pipeline: Pipeline,
    /// Deliver class targets as one-hot rows (`f32`) instead of labels (`u32`).
    pub one_hot: bool,
    /// This process's part of every batch in data-parallel training, as (rank,
    /// ranks); (0, 1) for all of it.
    pub shard: (usize, usize),
}

impl BatchOptions {
    /// Batches of `batch_size`, shuffled with seed 0, two workers, four batches
    /// ahead, no augmentation, no preprocessing, labels as `u32`.
    pub fn new(batch_size: usize) -> Self {
        Self {
            batch_size,
            shuffle: true,
            seed: 0,
            drop_last: false,
            workers: 2,
            prefetch: 4,
            augment: Augment::none(),
            pipeline: Pipeline::new(),
            one_hot: false,
            shard: (0, 1),
        }
    }

    /// The same options with another seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The same options with shuffling on or off.
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }

    /// The same options dropping (or keeping) a short last batch.
    pub fn drop_last(mut self, on: bool) -> Self {
        self.drop_last = on;
        self
    }

    /// The same options with `n` worker threads (0: fill on the calling thread).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// The same options with `n` batches prepared ahead.
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = n;
        self
    }

    /// The same options with augmentation.
    pub fn augment(mut self, a: Augment) -> Self {
        self.augment = a;
        self
    }

    /// The same options with preprocessing.
    pub fn pipeline(mut self, p: Pipeline) -> Self {
        self.pipeline = p;
        self
    }

    /// The same options with one-hot targets on or off.
    pub fn one_hot(mut self, on: bool) -> Self {
        self.one_hot = on;
        self
    }

    /// The same options delivering rank `rank`'s part of each batch of `ranks`
    /// processes training together (a distributed sampler). The global batches are
    /// those of one process with batches of `ranks x batch_size` and the same seed;
    /// each rank takes a contiguous `batch_size` of each, and of a short last batch of
    /// `m` samples the part from `rank x m / ranks` to `(rank + 1) x m / ranks`
    /// (rounded down). A last batch with fewer samples than ranks is dropped on every
    /// rank, so that all ranks run the same number of steps.
    pub fn shard(mut self, rank: usize, ranks: usize) -> Self {
        self.shard = (rank, ranks);
        self
    }
}

/// Prepares batches of a data set on background threads.
///
/// ```
/// use kiln_data::{Augment, BatchOptions, Batcher, Pipeline};
///
/// let (train, _test) = kiln_data::mnist::embedded()?;
/// let options = BatchOptions::new(64)
///     .seed(7)
///     .pipeline(Pipeline::new().scale(1.0 / 255.0))
///     .augment(Augment::none().crop(2));
/// let mut batcher = Batcher::new(train, options)?;
/// for batch in batcher.epoch(0).take(3) {
///     let batch = batch?;
///     assert_eq!(batch.inputs().len(), batch.len() * 28 * 28);
///     assert_eq!(batch.labels().len(), batch.len());
/// }
/// # Ok::<(), kiln_data::Error>(())
/// ```
pub struct Batcher<D: Dataset + 'static> {
    data: Arc<D>,
    plan: Arc<Plan>,
    /// (rank, ranks): see [`BatchOptions::shard`].
    shard: (usize, usize),
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl<D: Dataset + 'static> std::fmt::Debug for Batcher<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("samples", &self.data.len())
            .field("plan", &self.plan)
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl<D: Dataset + 'static> Batcher<D> {
    /// A batcher over `data` (a data set, or an `Arc` of one to keep using it
    /// elsewhere), with its worker threads started.
    pub fn new(data: D, options: BatchOptions) -> Result<Self> {
        let data = Arc::new(data);
        if options.batch_size == 0 {
            return Err(Error::Config("the batch size must be at least 1".into()));
        }
        if data.is_empty() {
            return Err(Error::Config("cannot batch an empty data set".into()));
        }
        let (rank, ranks) = options.shard;
        if rank >= ranks {
            return Err(Error::Config(format!(
                "a shard must be one of the ranks: rank {rank} of {ranks}"
            )));
        }
        let shape = data.shape().to_vec();
        let sample_len = data.sample_len();
        let plan = Arc::new(Plan {
            batch_size: options.batch_size,
            sample_len,
            geometry: options.augment.check(&shape)?,
            affine: options.pipeline.compile(&shape)?,
            shape,
            augment: options.augment,
            targets: worker::target_out(data.target_kind(), options.one_hot)?,
            seed: options.seed,
            shuffle: options.shuffle,
            drop_last: options.drop_last,
        });
        // One buffer per batch ahead, one per worker being filled, one in the
        // consumer's hands.
        let pool = options.prefetch.max(1) + options.workers + 1;
        let shared = Arc::new(Shared::new((0..pool).map(|_| plan.buffers()).collect()));
        let mut batcher = Self {
            data,
            plan,
            shard: options.shard,
            shared,
            workers: Vec::with_capacity(options.workers),
        };
        for i in 0..options.workers {
            let (data, plan, shared) = (
                Arc::clone(&batcher.data),
                Arc::clone(&batcher.plan),
                Arc::clone(&batcher.shared),
            );
            let handle = std::thread::Builder::new()
                .name(format!("kiln-data-{i}"))
                .spawn(move || worker::run(&*data, &plan, &shared))
                // Dropping the batcher stops the threads already started.
                .map_err(|e| Error::Config(format!("cannot start a batcher thread: {e}")))?;
            batcher.workers.push(handle);
        }
        // Wait until every thread runs, so that their start-up (which allocates)
        // is over before the first batch.
        let mut state = batcher.shared.lock();
        while state.started < batcher.workers.len() {
            state = batcher
                .shared
                .done
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        drop(state);
        Ok(batcher)
    }

    /// The data set.
    pub fn data(&self) -> &D {
        &self.data
    }

    /// The number of batches of each epoch (the same on every rank of a shard).
    pub fn batches(&self) -> usize {
        let ranks = self.shard.1;
        let (n, b) = (self.data.len(), self.plan.batch_size * ranks);
        if self.plan.drop_last || n % b < ranks {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The samples each epoch delivers on this rank: the lengths of its batches
    /// added up (each `batch_size` long but the last).
    pub fn samples(&self) -> usize {
        let (rank, ranks) = self.shard;
        let global = self.plan.batch_size * ranks;
        let Some(full) = self.batches().checked_sub(1) else {
            return 0;
        };
        let last = (self.data.len() - full * global).min(global);
        full * self.plan.batch_size + (rank + 1) * last / ranks - rank * last / ranks
    }

    /// The batches of `epoch`, in order. Dropping the iterator early abandons the
    /// rest of the epoch.
    pub fn epoch(&mut self, epoch: u64) -> Epoch<'_, D> {
        let n = self.data.len();
        let order = if self.plan.shuffle {
            crate::rng::permutation(n, self.plan.seed, epoch)
        } else {
            (0..n).collect()
        };
        let batches = self.batches();
        let order = match self.shard {
            (_, 1) => order,
            (rank, ranks) => shard_order(&order, self.plan.batch_size, rank, ranks, batches),
        };
        let mut state = self.shared.lock();
        let job = Arc::new(Job {
            generation: state.generation + 1,
            epoch,
            order,
            batches,
        });
        state.start(Some(job));
        drop(state);
        self.shared.work.notify_all();
        Epoch {
            batcher: self,
            batches,
        }
    }
}

/// Rank `rank`'s samples of the first `batches` global batches of `order`, each of
/// `batch_size x ranks` samples or fewer at the end (see [`BatchOptions::shard`]).
fn shard_order(
    order: &[usize],
    batch_size: usize,
    rank: usize,
    ranks: usize,
    batches: usize,
) -> Vec<usize> {
    let global = batch_size * ranks;
    let mut mine = Vec::with_capacity(batch_size * batches);
    for start in (0..batches).map(|k| k * global) {
        let m = (order.len() - start).min(global);
        mine.extend_from_slice(&order[start + rank * m / ranks..start + (rank + 1) * m / ranks]);
    }
    mine
}

impl<D: Dataset + 'static> Drop for Batcher<D> {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// The batches of one epoch, in order.
pub struct Epoch<'a, D: Dataset + 'static> {
    batcher: &'a mut Batcher<D>,
    batches: usize,
}

impl<D: Dataset + 'static> Epoch<'_, D> {
    /// Fills the next batch on this thread (no workers).
    fn fill_here(&mut self) -> Option<Result<Batch>> {
        let shared = &self.batcher.shared;
        let plan = &self.batcher.plan;
        let mut state = shared.lock();
        if state.free.is_empty() {
            state.free.push(plan.buffers());
        }
        let (job, b, mut buffers) = state.claim()?;
        state.in_flight -= 1;
        state.delivered += 1;
        drop(state);
        let result = worker::fill_guarded(&*self.batcher.data, plan, &job, b, &mut buffers);
        Some(self.deliver(buffers, result, b))
    }

    fn deliver(&self, buffers: Buffers, result: Result<()>, index: usize) -> Result<Batch> {
        let batch = Batch {
            buffers: Some(buffers),
            shared: Arc::clone(&self.batcher.shared),
            plan: Arc::clone(&self.batcher.plan),
            index,
        };
        // On error the batch goes out of scope here and its buffer back to the pool.
        result.map(|()| batch)
    }
}

impl<D: Dataset + 'static> Iterator for Epoch<'_, D> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.batcher.workers.is_empty() {
            return self.fill_here();
        }
        let shared = Arc::clone(&self.batcher.shared);
        let mut state = shared.lock();
        loop {
            if state.delivered >= self.batches {
                return None;
            }
            if let Some(Some(_)) = state.ready.front() {
                let filled = state.ready.pop_front().flatten()?;
                state.delivered += 1;
                drop(state);
                return Some(self.deliver(filled.buffers, filled.result, filled.batch));
            }
            // Every buffer is held by the caller (batches kept alive): add one, or no
            // worker could ever fill the batch awaited here.
            if state.in_flight == 0 && state.free.is_empty() {
                state.free.push(self.batcher.plan.buffers());
                shared.work.notify_one();
            }
            state = shared.done.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self
            .batches
            .saturating_sub(self.batcher.shared.lock().delivered);
        (left, Some(left))
    }
}

impl<D: Dataset + 'static> Drop for Epoch<'_, D> {
    fn drop(&mut self) {
        // Abandon what is left: workers stop claiming, finished batches are recycled.
        self.batcher.shared.lock().start(None);
    }
}

/// The targets of a batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BatchTargets<'a> {
    /// One class label per sample.
    Labels(&'a [u32]),
    /// `width` values per sample (one-hot rows or regression targets).
    Values {
        /// The values, sample after sample.
        values: &'a [f32],
        /// Values per sample.
        width: usize,
    },
}

/// One batch: contiguous inputs and targets, ready for one upload. Dropping it
/// returns its storage to the batcher's pool.
pub struct Batch {
    buffers: Option<Buffers>,
    shared: Arc<Shared>,
    plan: Arc<Plan>,
    index: usize,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("index", &self.index)
            .field("len", &self.len())
            .finish()
    }
}

impl Batch {
    fn buf(&self) -> &Buffers {
        // Present from creation until drop.
        static EMPTY: Buffers = Buffers {
            inputs: Vec::new(),
            labels: Vec::new(),
            values: Vec::new(),
            indices: Vec::new(),
            len: 0,
        };
        self.buffers.as_ref().unwrap_or(&EMPTY)
    }

    /// The number of samples (the batch size, or fewer in a short last batch).
    pub fn len(&self) -> usize {
        self.buf().len
    }

    /// Whether the batch holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position of this batch in its epoch.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The shape of one sample.
    pub fn sample_shape(&self) -> &[usize] {
        &self.plan.shape
    }

    /// The inputs, `len() x sample_len` floats, sample after sample.
    pub fn inputs(&self) -> &[f32] {
        &self.buf().inputs[..self.len() * self.plan.sample_len]
    }

    /// The class labels (empty when the targets are values).
    pub fn labels(&self) -> &[u32] {
        match self.plan.targets {
            TargetOut::Labels => &self.buf().labels[..self.len()],
            _ => &[],
        }
    }

    /// The target values, `len() x width` (empty when the targets are labels).
    pub fn values(&self) -> &[f32] {
        match self.plan.targets {
            TargetOut::Labels => &[],
            TargetOut::OneHot(w) | TargetOut::Values(w) => &self.buf().values[..self.len() * w],
        }
    }

    /// The targets.
    pub fn targets(&self) -> BatchTargets<'_> {
        match self.plan.targets {
            TargetOut::Labels => BatchTargets::Labels(self.labels()),
            TargetOut::OneHot(width) | TargetOut::Values(width) => BatchTargets::Values {
                values: self.values(),
                width,
            },
        }
    }

    /// The data-set index of each sample.
    pub fn indices(&self) -> &[usize] {
        &self.buf().indices[..self.len()]
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let Some(b) = self.buffers.take() {
            self.shared.give_back(b);
        }
    }
}
