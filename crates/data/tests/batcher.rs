//! The batcher: the same seed gives the same batches in the same order whatever the
//! number of worker threads; every sample once per epoch; short and dropped last
//! batches; cutout on top of the crops and flips; targets as labels, one-hot rows or
//! values; errors and panics of a data set reported as errors.

// The helpers below are shared by the tests; a failing call fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::borrow::Cow;
use std::sync::Arc;

use kiln_data::{
    Augment, BatchOptions, BatchTargets, Batcher, Dataset, Dtype, Error, InMemory, Input, Inputs,
    Pipeline, Result, Sample, Subset, Target, TargetKind, Targets,
};

/// `n` 6x5 RGB images whose bytes encode the sample and the position.
fn images(n: usize) -> InMemory {
    let pixels = (0..n * 90)
        .map(|i| ((i * 31 + i / 90) % 256) as u8)
        .collect();
    let labels = (0..n).map(|i| (i % 7) as u32).collect();
    InMemory::new(
        vec![6, 5, 3],
        Inputs::U8(pixels),
        Targets::Classes { labels, classes: 7 },
    )
    .unwrap()
}

type Epochs = Vec<Vec<(Vec<usize>, Vec<f32>, Vec<u32>)>>;

fn run(data: &Arc<InMemory>, options: BatchOptions, epochs: u64) -> Epochs {
    let mut b = Batcher::new(Arc::clone(data), options).unwrap();
    (0..epochs)
        .map(|e| {
            b.epoch(e)
                .map(|batch| {
                    let batch = batch.unwrap();
                    (
                        batch.indices().to_vec(),
                        batch.inputs().to_vec(),
                        batch.labels().to_vec(),
                    )
                })
                .collect()
        })
        .collect()
}

fn augmented(workers: usize, prefetch: usize) -> BatchOptions {
    BatchOptions::new(16)
        .seed(42)
        .workers(workers)
        .prefetch(prefetch)
        .augment(Augment::none().crop(2).flip())
        .pipeline(
            Pipeline::new()
                .scale(1.0 / 255.0)
                .normalize(vec![0.5, 0.4, 0.3], vec![0.2, 0.25, 0.3]),
        )
}

#[test]
fn same_seed_same_batches_whatever_the_threads() {
    let data = Arc::new(images(203));
    let reference = run(&data, augmented(0, 1), 3);
    for (workers, prefetch) in [(1, 1), (2, 4), (4, 2), (3, 9)] {
        assert!(
            run(&data, augmented(workers, prefetch), 3) == reference,
            "{workers} workers differ"
        );
    }
    assert_ne!(
        reference[0], reference[1],
        "epochs are shuffled differently"
    );
    assert!(run(&data, augmented(2, 4).seed(43), 1)[0] != reference[0]);
}

#[test]
fn every_sample_once_per_epoch_and_short_last_batches() {
    let data = Arc::new(images(50));
    let epochs = run(&data, BatchOptions::new(16).seed(1), 2);
    for epoch in &epochs {
        let lens: Vec<usize> = epoch.iter().map(|b| b.0.len()).collect();
        assert_eq!(lens, vec![16, 16, 16, 2]);
        let mut seen: Vec<usize> = epoch.iter().flat_map(|b| b.0.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }
    let dropped = run(&data, BatchOptions::new(16).seed(1).drop_last(true), 1);
    assert_eq!(dropped[0].len(), 3);
    for (drop_last, samples) in [(false, 50), (true, 48)] {
        let options = BatchOptions::new(16).drop_last(drop_last);
        assert_eq!(
            Batcher::new(Arc::clone(&data), options).unwrap().samples(),
            samples
        );
    }
    assert_eq!(
        dropped[0][..],
        epochs[0][..3],
        "dropping the last batch changes no other"
    );

    let ordered = run(&data, BatchOptions::new(16).shuffle(false), 1);
    assert_eq!(ordered[0][0].0, (0..16).collect::<Vec<_>>());
    // Without augmentation or preprocessing, the inputs are the bytes as floats.
    let first: Vec<f32> = data.bytes().unwrap()[..16 * 90]
        .iter()
        .map(|&b| f32::from(b))
        .collect();
    assert_eq!(ordered[0][0].1, first);
    assert_eq!(ordered[0][0].2, data.labels().unwrap()[..16]);
}

#[test]
fn augmentation_crops_and_flips_per_sample() {
    let data = Arc::new(images(64));
    let plain = run(&data, BatchOptions::new(64).shuffle(false), 1);
    let aug = run(
        &data,
        BatchOptions::new(64)
            .shuffle(false)
            .augment(Augment::none().crop(2).flip()),
        2,
    );
    let changed = |e: usize| {
        (0..64)
            .filter(|&i| aug[e][0].1[i * 90..(i + 1) * 90] != plain[0][0].1[i * 90..(i + 1) * 90])
            .count()
    };
    // 25 windows x 2 flips: 1 in 50 leaves a sample unchanged.
    assert!(changed(0) > 50, "{}", changed(0));
    assert_ne!(aug[0][0].1, aug[1][0].1, "each epoch draws again");
}

#[test]
fn cutout_is_the_same_whatever_the_threads_and_changes_one_square() {
    let data = Arc::new(images(203));
    let cut = |workers, prefetch| {
        let options = augmented(workers, prefetch);
        let augment = options.augment.cutout(3);
        options.augment(augment)
    };
    let reference = run(&data, cut(0, 1), 2);
    for (workers, prefetch) in [(1, 1), (2, 4), (3, 9)] {
        assert!(
            run(&data, cut(workers, prefetch), 2) == reference,
            "{workers} workers differ"
        );
    }
    // Against the same crops and flips without cutout: each image differs in one
    // clipped 3x3 square, set to 0 after the normalisation.
    let uncut = run(&data, augmented(0, 1), 2);
    let mut areas = [0usize; 10];
    for (epoch, batches) in reference.iter().enumerate() {
        for (batch, (indices, inputs, _)) in batches.iter().enumerate() {
            let plain = &uncut[epoch][batch];
            assert_eq!(*indices, plain.0, "the same samples in the same order");
            for (image, pixels) in inputs.chunks(90).enumerate() {
                let before = &plain.1[image * 90..(image + 1) * 90];
                let changed: Vec<usize> = (0..30)
                    .filter(|&p| pixels[p * 3..p * 3 + 3] != before[p * 3..p * 3 + 3])
                    .collect();
                for &p in &changed {
                    assert_eq!(
                        pixels[p * 3..p * 3 + 3],
                        [0.0; 3],
                        "pixel {p} of a cut image"
                    );
                }
                let rows = changed.iter().map(|p| p / 5);
                let cols = changed.iter().map(|p| p % 5);
                let height = rows.clone().max().unwrap() - rows.min().unwrap() + 1;
                let width = cols.clone().max().unwrap() - cols.min().unwrap() + 1;
                assert_eq!(changed.len(), height * width, "a rectangle");
                assert!((2..=3).contains(&height) && (2..=3).contains(&width));
                areas[changed.len()] += 1;
            }
        }
    }
    assert!(
        areas[9] > 60,
        "most squares lie inside the image: {areas:?}"
    );
    assert!(areas[4] > 0 && areas[6] > 0, "some are clipped: {areas:?}");
    assert_ne!(reference[0], reference[1], "each epoch draws again");
}

#[test]
fn abandoned_epochs_and_batches_kept_alive() {
    let data = Arc::new(images(100));
    let full = run(&data, augmented(2, 2), 2);
    let mut b = Batcher::new(Arc::clone(&data), augmented(2, 2)).unwrap();
    {
        let mut e = b.epoch(0);
        assert!(e.next().unwrap().is_ok());
    }
    // Keep every batch of an epoch alive at once: the pool grows instead of stalling.
    let kept: Vec<_> = b.epoch(1).map(|x| x.unwrap()).collect();
    assert_eq!(kept.len(), 7);
    for (batch, want) in kept.iter().zip(&full[1]) {
        assert_eq!(batch.indices(), &want.0[..]);
        assert_eq!(batch.inputs(), &want.1[..]);
    }
    assert_eq!(b.batches(), 7);
}

#[test]
fn one_hot_and_real_targets() {
    let data = images(10);
    let mut b = Batcher::new(
        data.clone(),
        BatchOptions::new(4).one_hot(true).shuffle(false),
    )
    .unwrap();
    let batch = b.epoch(0).next().unwrap().unwrap();
    assert!(batch.labels().is_empty());
    let BatchTargets::Values { values, width: 7 } = batch.targets() else {
        panic!("one-hot")
    };
    assert_eq!(&values[7..14], &[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);

    let reg = InMemory::new(
        vec![2],
        Inputs::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        Targets::Real {
            values: vec![10.0, 20.0, 30.0],
            width: 1,
        },
    )
    .unwrap();
    let mut b = Batcher::new(reg, BatchOptions::new(2).shuffle(false).workers(1)).unwrap();
    let all: Vec<(Vec<f32>, Vec<f32>)> = b
        .epoch(0)
        .map(|x| x.unwrap())
        .map(|x| (x.inputs().to_vec(), x.values().to_vec()))
        .collect();
    assert_eq!(
        all,
        vec![
            (vec![1.0, 2.0, 3.0, 4.0], vec![10.0, 20.0]),
            (vec![5.0, 6.0], vec![30.0])
        ]
    );
    assert!(
        Batcher::new(
            images(3).one_hot().unwrap(),
            BatchOptions::new(2).one_hot(true)
        )
        .is_err()
    );
}

#[test]
fn bad_options_are_errors() {
    let data = images(10);
    assert!(Batcher::new(data.clone(), BatchOptions::new(0)).is_err());
    assert!(
        Batcher::new(
            data.clone(),
            BatchOptions::new(4).augment(Augment::none().crop(7))
        )
        .is_err()
    );
    for side in [0, 6] {
        let refused = Batcher::new(
            data.clone(),
            BatchOptions::new(4).augment(Augment::none().flip().cutout(side)),
        );
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("cutout's side"), "{message}");
    }
    assert!(
        Batcher::new(
            data.clone(),
            BatchOptions::new(4).pipeline(Pipeline::new().normalize(vec![0.0; 2], vec![1.0; 2]))
        )
        .is_err()
    );
    let vectors = InMemory::new(
        vec![4],
        Inputs::F32(vec![0.0; 8]),
        Targets::Classes {
            labels: vec![0, 1],
            classes: 2,
        },
    )
    .unwrap();
    assert!(
        Batcher::new(
            vectors,
            BatchOptions::new(1).augment(Augment::none().flip())
        )
        .is_err()
    );
}

#[test]
fn subsets_batch_like_their_copies() {
    let data = Arc::new(images(40));
    let pick: Vec<usize> = (0..40).filter(|i| i % 3 != 0).collect();
    let copy = Arc::new(data.select(&pick).unwrap());
    let view = Subset::new(Arc::clone(&data), pick).unwrap();
    let mut b = Batcher::new(view, augmented(2, 2)).unwrap();
    let from_view: Vec<Vec<f32>> = b.epoch(0).map(|x| x.unwrap().inputs().to_vec()).collect();
    let from_copy: Vec<Vec<f32>> = run(&copy, augmented(2, 2), 1)[0]
        .iter()
        .map(|x| x.1.clone())
        .collect();
    assert_eq!(from_view, from_copy);
}

/// A data set whose sample `bad` fails, or panics.
struct Faulty {
    bad: usize,
    panics: bool,
}

impl Dataset for Faulty {
    fn len(&self) -> usize {
        20
    }
    fn shape(&self) -> &[usize] {
        &[2]
    }
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn target_kind(&self) -> TargetKind {
        TargetKind::Classes(2)
    }
    fn get(&self, index: usize) -> Result<Sample<'_>> {
        if index == self.bad {
            if self.panics {
                panic!("sample {index} is cursed");
            }
            return Err(Error::Config(format!("sample {index} is unreadable")));
        }
        Ok(Sample {
            input: Input::F32(Cow::Owned(vec![index as f32; 2])),
            target: Target::Class(0),
        })
    }
}

#[test]
fn data_set_errors_and_panics_become_errors() {
    for workers in [0, 2] {
        for panics in [false, true] {
            let options = BatchOptions::new(4).shuffle(false).workers(workers);
            let mut b = Batcher::new(Faulty { bad: 9, panics }, options).unwrap();
            let results: Vec<_> = b.epoch(0).collect();
            assert_eq!(results.len(), 5);
            for (i, r) in results.iter().enumerate() {
                match (i, r) {
                    (2, Err(Error::WorkerPanicked { batch: 2 })) if panics => {}
                    (2, Err(e)) if !panics => assert!(e.to_string().contains("sample 9"), "{e}"),
                    (2, other) => panic!("batch 2: {other:?}"),
                    (_, r) => assert!(r.is_ok()),
                }
            }
            // The batcher still works afterwards.
            assert_eq!(b.epoch(1).filter(|r| r.is_ok()).count(), 4);
        }
    }
}
