//! A sharded batcher (data-parallel training): the ranks' batches put together are the
//! batches of one process with the global batch size, sample for sample and with the
//! same augmentation; a short last batch is split, or dropped on every rank when it
//! has fewer samples than there are ranks.

// A failing call fails the test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use kiln_data::{Augment, BatchOptions, Batcher, InMemory, Inputs, Targets};

/// `n` 4x4 grey images whose bytes encode the sample.
fn images(n: usize) -> Arc<InMemory> {
    let pixels = (0..n * 16)
        .map(|i| ((i * 7 + i / 16) % 256) as u8)
        .collect();
    let labels = (0..n).map(|i| (i % 3) as u32).collect();
    let data = InMemory::new(
        vec![4, 4, 1],
        Inputs::U8(pixels),
        Targets::Classes { labels, classes: 3 },
    );
    Arc::new(data.unwrap())
}

/// Each batch of `epoch`: its sample indices and inputs.
fn batches(data: &Arc<InMemory>, options: BatchOptions, epoch: u64) -> Vec<(Vec<usize>, Vec<f32>)> {
    let mut b = Batcher::new(Arc::clone(data), options).unwrap();
    let n = b.batches();
    let out: Vec<_> = b
        .epoch(epoch)
        .map(|batch| {
            let batch = batch.unwrap();
            (batch.indices().to_vec(), batch.inputs().to_vec())
        })
        .collect();
    assert_eq!(out.len(), n, "batches() must count what epoch() delivers");
    let samples: usize = out.iter().map(|(indices, _)| indices.len()).sum();
    assert_eq!(
        samples,
        b.samples(),
        "samples() must count what epoch() delivers"
    );
    out
}

fn options(batch: usize) -> BatchOptions {
    BatchOptions::new(batch)
        .seed(5)
        .workers(1)
        .augment(Augment::none().crop(1).flip())
}

#[test]
fn ranks_together_make_the_global_batches() {
    // 3 ranks x 4 = 12 a global batch; 12 x 4 + 5 samples: a short last batch of 5,
    // split 1, 2, 2.
    for (n, ranks, want_last) in [(53, 3, Some(vec![1, 2, 2])), (50, 3, None), (48, 2, None)] {
        let data = images(n);
        let global = batches(&data, options(4 * ranks), 1);
        let shards: Vec<_> = (0..ranks)
            .map(|r| batches(&data, options(4).shard(r, ranks), 1))
            .collect();
        // A last batch of 2 samples for 3 ranks is dropped everywhere.
        let steps = if n % (4 * ranks) != 0 && n % (4 * ranks) < ranks {
            global.len() - 1
        } else {
            global.len()
        };
        for shard in &shards {
            assert_eq!(shard.len(), steps, "n = {n}");
        }
        for (k, (indices, inputs)) in global.iter().take(steps).enumerate() {
            let joined: Vec<usize> = shards.iter().flat_map(|s| s[k].0.clone()).collect();
            let joined_inputs: Vec<f32> = shards.iter().flat_map(|s| s[k].1.clone()).collect();
            assert_eq!(&joined, indices, "n = {n}, batch {k}");
            assert_eq!(&joined_inputs, inputs, "n = {n}, batch {k}");
        }
        if let Some(sizes) = want_last {
            let last: Vec<usize> = shards.iter().map(|s| s[steps - 1].0.len()).collect();
            assert_eq!(last, sizes);
        }
    }
}

#[test]
fn a_rank_outside_the_world_is_an_error() {
    let e = Batcher::new(images(8), options(2).shard(2, 2)).err();
    assert!(e.is_some_and(|e| e.to_string().contains("rank 2 of 2")));
}
