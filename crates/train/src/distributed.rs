//! Data-parallel `fit` (Horovod's and PyTorch DDP's): one process a device, each
//! training on its shard of every global batch, the gradients summed across ranks
//! before each optimizer step, the loss, the metrics and validation summed across
//! ranks at the end of each epoch, so that every rank holds the same weights and the
//! same [`History`](crate::History).
//!
//! What `fit` does with a [`World`] of more than one rank (through
//! [`FitOptions::distributed`](crate::FitOptions::distributed)):
//! - at start-up every rank checks that all agree on the model (a fingerprint of its
//!   parameters' names and shapes), the data set's size, the batch size, the epochs
//!   and the seed, and takes rank 0's weights and saved state;
//! - the batcher delivers the rank's part of each global batch
//!   ([`BatchOptions::shard`](kiln_data::BatchOptions::shard)), and validation runs
//!   on a contiguous share of the validation data on each rank;
//! - after each backward pass the gradients are averaged over the global batch: each
//!   rank's mean gradient weighted by its samples, summed, divided by the samples of
//!   all ranks, so a short last batch split unevenly still gives the global mean;
//! - progress is printed and file-writing callbacks ([`Callback::root_only`]) run on
//!   rank 0 only; a callback's request to stop is honoured on every rank.
//!
//! [`Callback::root_only`]: crate::Callback::root_only

use std::sync::Arc;

use kiln_data::{Dataset, Subset};
use kiln_distributed::World;
use kiln_kernels::{Backend, ParamMut, ParamRef, StateMut, StateRef, Trainable};

use crate::Result;
use crate::metrics::MetricSet;
use crate::trainer::SharedData;

/// The gradient all-reduce of a model: host buffers as large as its parameters plus
/// the sample count, allocated once, so that a step allocates nothing.
pub(crate) struct Reducer {
    world: World,
    send: Vec<f32>,
    recv: Vec<f32>,
}

/// FNV-1a over `bytes`, continuing from `hash`.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A fingerprint of `model`'s parameters and saved state: names and shapes, in order.
pub(crate) fn fingerprint<B: Backend, T: Trainable<B>>(model: &T) -> Result<u64> {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut add = |layer: &str, name: &str, dims: &[usize]| {
        hash = fnv1a(hash, layer.as_bytes());
        hash = fnv1a(hash, b".");
        hash = fnv1a(hash, name.as_bytes());
        for d in dims {
            hash = fnv1a(hash, &(*d as u64).to_le_bytes());
        }
    };
    model.parameters(&mut |p: ParamRef<'_, B>| {
        add(p.layer, p.name, p.shape.dims());
        Ok(())
    })?;
    model.state(&mut |s: StateRef<'_, B>| {
        add(s.layer, s.name, s.shape.dims());
        Ok(())
    })?;
    Ok(hash)
}

impl Reducer {
    /// Checks that every rank agrees on the model and the run (`facts`: what is
    /// compared, and this rank's value), then gives every rank rank 0's weights and
    /// saved state.
    pub(crate) fn new<B: Backend, T: Trainable<B>>(
        world: World,
        model: &mut T,
        facts: &[(&str, u64)],
    ) -> Result<Self> {
        world.check_same(
            "the model (a fingerprint of its parameters' names and shapes)",
            fingerprint(model)?,
        )?;
        for (what, value) in facts {
            world.check_same(what, *value)?;
        }
        let mut len = 0;
        model.parameters(&mut |p: ParamRef<'_, B>| {
            len += p.shape.size();
            Ok(())
        })?;
        let mut state_len = 0;
        model.state(&mut |s: StateRef<'_, B>| {
            state_len += s.shape.size();
            Ok(())
        })?;
        let mut reducer = Self {
            world,
            send: vec![0.0; len.max(state_len) + 1],
            recv: vec![0.0; len.max(state_len) + 1],
        };
        reducer.broadcast(model)?;
        Ok(reducer)
    }

    /// Every rank's parameters and saved state become rank 0's.
    fn broadcast<B: Backend, T: Trainable<B>>(&mut self, model: &mut T) -> Result<()> {
        let backend = model.backend().clone();
        let (buffer, world) = (&mut self.send, &self.world);
        let mut at = 0;
        model.parameters(&mut |p: ParamRef<'_, B>| {
            let n = p.shape.size();
            backend.download(p.value, &mut buffer[at..at + n])?;
            at += n;
            Ok(())
        })?;
        world.broadcast_f32(&mut buffer[..at], 0)?;
        let mut at = 0;
        model.visit_parameters(&mut |p: ParamMut<'_, B>| {
            let n = p.shape.size();
            backend.upload(&buffer[at..at + n], p.value)?;
            at += n;
            Ok(())
        })?;
        let mut at = 0;
        model.state(&mut |s: StateRef<'_, B>| {
            let n = s.shape.size();
            backend.download(s.value, &mut buffer[at..at + n])?;
            at += n;
            Ok(())
        })?;
        world.broadcast_f32(&mut buffer[..at], 0)?;
        let mut at = 0;
        model.visit_state(&mut |s: StateMut<'_, B>| {
            let n = s.shape.size();
            backend.upload(&buffer[at..at + n], s.value)?;
            at += n;
            Ok(())
        })?;
        Ok(())
    }

    /// Replaces each gradient of `model` (this rank's mean over its `samples`) by the
    /// mean over the samples of every rank.
    pub(crate) fn reduce<B: Backend, T: Trainable<B>>(
        &mut self,
        model: &mut T,
        samples: usize,
    ) -> Result<()> {
        let backend = model.backend().clone();
        let (send, recv) = (&mut self.send, &mut self.recv);
        let weight = samples as f32;
        let mut at = 0;
        model.parameters(&mut |p: ParamRef<'_, B>| {
            let dst = &mut send[at..at + p.shape.size()];
            backend.download(p.grad, dst)?;
            dst.iter_mut().for_each(|g| *g *= weight);
            at += dst.len();
            Ok(())
        })?;
        send[at] = weight;
        self.world.all_reduce_f32(&send[..=at], &mut recv[..=at])?;
        let scale = 1.0 / recv[at];
        recv[..at].iter_mut().for_each(|g| *g *= scale);
        let mut at = 0;
        model.visit_parameters(&mut |p: ParamMut<'_, B>| {
            let n = p.shape.size();
            backend.upload(&recv[at..at + n], p.grad)?;
            at += n;
            Ok(())
        })?;
        Ok(())
    }

    /// Sums an epoch's (or a validation's) figures over the ranks: the loss summed
    /// over samples, the samples, each metric's accumulators, and whether any rank
    /// asked to stop.
    pub(crate) fn reduce_totals<B: Backend>(
        &self,
        backend: &B,
        loss_sum: &mut f64,
        samples: &mut usize,
        metrics: &mut MetricSet<B>,
        stop: Option<&mut bool>,
    ) -> Result<()> {
        let asked = stop.as_ref().is_some_and(|s| **s);
        let mut totals = [*loss_sum, *samples as f64, f64::from(u8::from(asked))];
        self.world.sum_f64(&mut totals)?;
        *loss_sum = totals[0];
        *samples = totals[1] as usize;
        if let Some(stop) = stop {
            *stop = totals[2] > 0.0;
        }
        metrics.all_reduce(backend, &self.world)
    }
}

/// Rank `world.rank()`'s contiguous share of `data` (validation: each sample evaluated
/// once, on one rank).
pub(crate) fn shard(data: SharedData, world: &World) -> Result<SharedData> {
    let (n, rank, ranks) = (data.len(), world.rank(), world.size());
    if n < ranks {
        return Err(crate::Error::Config(format!(
            "{n} validation samples cannot be shared among {ranks} ranks"
        )));
    }
    let indices = (rank * n / ranks..(rank + 1) * n / ranks).collect();
    Ok(Arc::new(Subset::new(data, indices)?))
}
