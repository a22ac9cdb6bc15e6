//! The batch-size finder: the largest batch whose training step fits a memory budget,
//! and the batch that trains fastest on this device.
//!
//! PyTorch Lightning's `scale_batch_size` finds the largest batch by trial: it
//! doubles the batch until a step runs out of memory, then searches between the last
//! size that fitted and the first that did not. A model that `model!` generated knows
//! its memory before it runs: its parameters ([`Model::PARAMETERS`]) and the workspace
//! that the macro planned for one sample ([`Model::WORKSPACE_FLOATS_PER_SAMPLE`]), so
//! [`max_batch_for_memory`] runs the same search on [`MemoryEstimate::bytes`] instead
//! of on trial steps. Where the estimate cannot be trusted (a hand-written model, a
//! device whose libraries take memory of their own), [`max_batch_by_trial`] runs
//! Lightning's search on real steps, a step that runs out of memory marking a size
//! that does not fit; [`scale_batch_size`] is the search itself, for any test of a
//! size.
//!
//! The largest batch is not always the fastest: [`throughput`] times a few sizes on
//! this device and [`fastest`] picks the one that trains the most samples a second.

use std::sync::Arc;
use std::time::Instant;

use kiln_data::{Dataset, Pipeline, Subset};
use kiln_kernels::Backend;
use kiln_nn::Model;
use kiln_optim::Algorithm;

use crate::progress::Verbosity;
use crate::trainer::{FitOptions, SharedData, Trainer};
use crate::{Error, Result};

/// Bytes of an `f32`.
const FLOAT: usize = 4;

/// The device memory of a model's training step, from what the macro planned.
///
/// A lower bound: the layers keep some scratch of their own beyond the planned
/// workspace (pooling's indices, the input of an activation whose gradient reads
/// it), and the backend and its libraries take memory too. On the seed CNN with Adam
/// the CPU trainer keeps 12 % more a sample than [`MemoryEstimate::bytes`] says, and
/// 6 MiB more in all (`tests/batch_size_memory.rs`): give [`max_batch_for_memory`]
/// about 80 % of the memory that is free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The weights and their gradients.
    pub parameters: usize,
    /// The optimizer's state (one copy of the weights a slot).
    pub optimizer: usize,
    /// The workspace of one sample: its input, the activations the backward pass reads
    /// and the gradients, as the plan shares buffers among them.
    pub workspace_per_sample: usize,
    /// The loss's buffers for one sample: its targets, weight, value and gradient.
    pub loss_per_sample: usize,
}

impl MemoryEstimate {
    /// The estimate for model `M` trained by `algorithm`, in bytes.
    pub fn of<B: Backend, M: Model<B>>(algorithm: &Algorithm) -> Self {
        let outputs = M::OUTPUT_SHAPE.size();
        Self {
            parameters: 2 * M::PARAMETERS * FLOAT,
            optimizer: algorithm.slot_names().len() * M::PARAMETERS * FLOAT,
            workspace_per_sample: M::WORKSPACE_FLOATS_PER_SAMPLE * FLOAT,
            // Targets (at most one a output), the sample's weight and value, the
            // gradient of the output.
            loss_per_sample: (2 * outputs + 2) * FLOAT,
        }
    }

    /// Bytes of a training step at batch `batch`.
    pub fn bytes(&self, batch: usize) -> usize {
        self.parameters
            + self.optimizer
            + batch.saturating_mul(self.workspace_per_sample + self.loss_per_sample)
    }
}

/// The largest batch in `1..=max` for which `fits` holds, searched as Lightning's
/// `scale_batch_size(mode="binsearch")` does: from `start`, double while the size fits,
/// then search between the last size that fitted and the first that did not. `None`
/// when not even size 1 fits. `fits` must be monotone (true up to some size, false
/// beyond); an error from it ends the search.
pub fn scale_batch_size(
    start: usize,
    max: usize,
    mut fits: impl FnMut(usize) -> Result<bool>,
) -> Result<Option<usize>> {
    if max == 0 {
        return Ok(None);
    }
    let mut size = start.clamp(1, max);
    // The largest size known to fit.
    let mut good = 0usize;
    while fits(size)? {
        good = size;
        if size == max {
            return Ok(Some(max));
        }
        size = size.saturating_mul(2).min(max);
    }
    // The smallest size known not to fit (the start itself, perhaps).
    let mut bad = size;
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if fits(mid)? {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Ok((good > 0).then_some(good))
}

/// The largest batch (up to `max`) whose training step of `M` by `algorithm` needs at
/// most `budget` bytes of device memory by [`MemoryEstimate`] (a lower bound: leave
/// headroom); no step is run, nothing is allocated. `None` when the parameters and
/// the optimizer's state alone exceed the budget.
pub fn max_batch_for_memory<B: Backend, M: Model<B>>(
    budget: usize,
    algorithm: &Algorithm,
    max: usize,
) -> Option<usize> {
    let estimate = MemoryEstimate::of::<B, M>(algorithm);
    let fits = |batch: usize| Ok(estimate.bytes(batch) <= budget);
    scale_batch_size(1, max, fits).ok().flatten()
}

/// Whether `error` says that the device ran out of memory (an allocation of the
/// model, the loss, the optimizer or the backend failed), rather than anything else.
pub fn is_out_of_memory(error: &Error) -> bool {
    let kernel = match error {
        Error::Backend(k)
        | Error::Model(kiln_nn::Error::Kernel(k))
        | Error::Loss(kiln_losses::Error::Backend(k))
        | Error::Optimizer(kiln_optim::Error::Backend(k)) => k,
        _ => return false,
    };
    matches!(kernel, kiln_kernels::Error::OutOfMemory { .. })
}

/// The largest batch (from `start`, up to `max` and the size of `data`) whose
/// training step runs on this device, found by trial as Lightning's
/// `scale_batch_size(mode="binsearch")` does: for each size tried, `make(size)` builds
/// a trainer (its model sized for that batch) that trains one batch of `data`
/// preprocessed by `pipeline`; a size fits unless building or training runs out of
/// memory ([`is_out_of_memory`]). Any other error ends the search. `None` when not
/// even one sample fits. The weights trained are thrown away, and each trainer is
/// dropped before the next is built.
///
/// Each size tried costs a model's construction and a step: prefer
/// [`max_batch_for_memory`] where the macro's estimate holds.
pub fn max_batch_by_trial<B: Backend, M: Model<B>>(
    mut make: impl FnMut(usize) -> Result<Trainer<B, M>>,
    data: impl Dataset + 'static,
    start: usize,
    max: usize,
    pipeline: &Pipeline,
) -> Result<Option<usize>> {
    let data: SharedData = Arc::new(data);
    let max = max.min(data.len());
    scale_batch_size(start, max, |batch| {
        let mut step = || -> Result<()> {
            let mut trainer = make(batch)?;
            let options = FitOptions::new(1, batch)
                .shuffle(false)
                .pipeline(pipeline.clone())
                .verbose(Verbosity::Silent);
            trainer.fit(
                Subset::new(Arc::clone(&data), (0..batch).collect())?,
                options,
            )?;
            Ok(())
        };
        match step() {
            Ok(()) => Ok(true),
            Err(e) if is_out_of_memory(&e) => Ok(false),
            Err(e) => Err(e),
        }
    })
}

/// How fast one batch size trains.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Throughput {
    /// The batch size.
    pub batch: usize,
    /// Training samples a second (forward, loss, backward, update, batching).
    pub samples_per_second: f64,
}

/// Measures the training speed of each of `batches` on this device: for each size,
/// `make(batch)` builds a trainer (its model sized for that batch), which trains one
/// warm-up batch and then `steps` timed batches of `data` preprocessed by `pipeline`.
/// The weights it trains are thrown away. Returns the measurements in the order of
/// `batches`; [`fastest`] picks the best.
pub fn throughput<B: Backend, M: Model<B>>(
    mut make: impl FnMut(usize) -> Result<Trainer<B, M>>,
    data: impl Dataset + 'static,
    batches: &[usize],
    steps: usize,
    pipeline: &Pipeline,
) -> Result<Vec<Throughput>> {
    let data: SharedData = Arc::new(data);
    let mut out = Vec::with_capacity(batches.len());
    for &batch in batches {
        let needed = batch * (steps + 1);
        if needed > data.len() || steps == 0 {
            return Err(Error::Config(format!(
                "timing batch {batch} over {steps} steps needs {needed} samples, the data holds {}",
                data.len()
            )));
        }
        let mut trainer = make(batch)?;
        let options = |epochs| {
            FitOptions::new(epochs, batch)
                .shuffle(false)
                .pipeline(pipeline.clone())
                .verbose(Verbosity::Silent)
        };
        trainer.fit(
            Subset::new(Arc::clone(&data), (0..batch).collect())?,
            options(1),
        )?;
        let timed = Subset::new(Arc::clone(&data), (batch..needed).collect())?;
        let started = Instant::now();
        trainer.fit(timed, options(1))?;
        let seconds = started.elapsed().as_secs_f64();
        out.push(Throughput {
            batch,
            samples_per_second: (batch * steps) as f64 / seconds.max(1e-9),
        });
    }
    Ok(out)
}

/// The fastest of `measured`, if any.
pub fn fastest(measured: &[Throughput]) -> Option<Throughput> {
    measured
        .iter()
        .copied()
        .max_by(|a, b| a.samples_per_second.total_cmp(&b.samples_per_second))
}

/// Powers of two from 1 up to `max`, and `max` itself: the sizes to time.
pub fn powers_of_two(max: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = std::iter::successors(Some(1usize), |s| s.checked_mul(2))
        .take_while(|&s| s <= max)
        .collect();
    if max > 0 && sizes.last() != Some(&max) {
        sizes.push(max);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_finds_the_largest_size_that_fits() {
        for limit in [1usize, 2, 3, 7, 8, 9, 100, 1000, 1023, 1024] {
            let mut tried = Vec::new();
            let found = scale_batch_size(2, 1024, |b| {
                tried.push(b);
                Ok(b <= limit)
            });
            assert_eq!(
                found.ok().flatten(),
                Some(limit),
                "limit {limit}, tried {tried:?}"
            );
            // Doubling then halving: logarithmically many trials.
            assert!(tried.len() <= 2 * 11, "{tried:?}");
        }
        assert_eq!(scale_batch_size(4, 64, |_| Ok(false)).ok().flatten(), None);
        assert_eq!(
            scale_batch_size(4, 64, |_| Ok(true)).ok().flatten(),
            Some(64)
        );
    }

    #[test]
    fn out_of_memory_is_told_apart_from_other_errors() {
        let oom = || kiln_kernels::Error::OutOfMemory {
            len: 1 << 40,
            backend: "cuda:0".into(),
        };
        assert!(is_out_of_memory(&Error::Backend(oom())));
        assert!(is_out_of_memory(&Error::Model(kiln_nn::Error::Kernel(
            oom()
        ))));
        assert!(is_out_of_memory(&Error::Optimizer(
            kiln_optim::Error::Backend(oom())
        )));
        assert!(!is_out_of_memory(&Error::Config("no".into())));
    }

    #[test]
    fn sizes_to_time() {
        assert_eq!(powers_of_two(12), [1, 2, 4, 8, 12]);
        assert_eq!(powers_of_two(8), [1, 2, 4, 8]);
        assert!(powers_of_two(0).is_empty());
    }
}
