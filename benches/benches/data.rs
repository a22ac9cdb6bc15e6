//! kiln-data's speed on CIFAR-10: (a) the batcher delivering batches of 64 with a
//! random crop (padding 4) and flip, and with cutout (12 pixels) on top, scaled and
//! normalised, from 2 worker threads (throughput in images); (b) loading the training and test sets from the gzipped
//! files, MD5-verified; (c) the batcher delivering batches of 64 augmented log-mel
//! spectrograms of the Free Spoken Digit Dataset (shift, gain, SpecAugment; features
//! computed on the workers, throughput in spectrograms), against the `spoken_digits`
//! example's training rate. Real data comes from `../shared/data` beside the project
//! when present; otherwise (a) runs on synthetic images and (b) and (c) are skipped.
//! Run with `cargo xtask bench`.

// A benchmark whose setup fails has nothing to measure: it stops with the error.
#![allow(clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_data::audio::{AudioAugment, FeatureOptions, Spectrograms, fsdd};
use kiln_data::{
    Augment, BatchOptions, Batcher, Dataset, InMemory, Inputs, Pipeline, Targets, cifar,
};

const BATCH: usize = 64;

fn cifar_dir() -> Option<&'static Path> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/cifar10"
    ));
    dir.is_dir().then_some(dir)
}

fn workers() -> usize {
    std::env::var("KILN_DATA_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// The CIFAR-10 training set, or 50,000 synthetic images of its shape.
fn training_set() -> (InMemory, &'static str) {
    if let Some(dir) = cifar_dir() {
        let (train, _) = cifar::load_dir(dir).expect("CIFAR-10");
        return (train, "real");
    }
    let n = 50_000;
    let pixels = (0..n * cifar::IMAGE_LEN)
        .map(|i| (kiln_mix(i as u64) >> 56) as u8)
        .collect();
    let labels = (0..n).map(|i| (i % 10) as u32).collect();
    let data = InMemory::new(
        vec![32, 32, 3],
        Inputs::U8(pixels),
        Targets::Classes {
            labels,
            classes: 10,
        },
    )
    .expect("synthetic");
    (data, "synthetic")
}

fn kiln_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn batcher(c: &mut Criterion) {
    let (train, source) = training_set();
    let train = Arc::new(train);
    let workers = workers();
    let mut group = c.benchmark_group(format!("data_cifar10_{source}"));
    group.throughput(Throughput::Elements(BATCH as u64));
    let crop_flip = Augment::none().crop(4).flip();
    for (name, augment) in [
        ("crop4_flip", crop_flip),
        ("crop4_flip_cutout12", crop_flip.cutout(12)),
    ] {
        let options = BatchOptions::new(BATCH)
            .seed(1)
            .workers(workers)
            .augment(augment)
            .pipeline(
                Pipeline::new()
                    .scale(1.0 / 255.0)
                    .normalize(vec![0.4914, 0.4822, 0.4465], vec![0.2470, 0.2435, 0.2616]),
            );
        let mut batcher = Batcher::new(Arc::clone(&train), options).expect("batcher");
        group.bench_function(format!("batches64_{name}_workers{workers}"), |b| {
            let mut epoch = 0;
            b.iter_custom(|iters| time_batches(&mut batcher, iters, &mut epoch));
        });
    }
    group.finish();
}

/// The time `batcher` takes to deliver `iters` batches, from epoch `epoch` on.
fn time_batches<D: Dataset + 'static>(
    batcher: &mut Batcher<D>,
    iters: u64,
    epoch: &mut u64,
) -> Duration {
    let start = Instant::now();
    let mut left = iters;
    while left > 0 {
        for batch in batcher.epoch(*epoch).take(left as usize) {
            let batch = batch.expect("batch");
            std::hint::black_box(batch.inputs()[0]);
            left -= 1;
        }
        *epoch += 1;
    }
    start.elapsed()
}

fn load(c: &mut Criterion) {
    let Some(dir) = cifar_dir() else {
        eprintln!("data: ../shared/data/cifar10 is absent; the load benchmark is skipped");
        return;
    };
    let mut group = c.benchmark_group("data_cifar10_load");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(60_000));
    group.bench_function("train_and_test_gzipped_md5", |b| {
        b.iter(|| cifar::load_dir(dir).expect("CIFAR-10"));
    });
    group.finish();
}

fn spectrograms(c: &mut Criterion) {
    let archive = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/speech"
    ))
    .join(fsdd::ARCHIVE);
    if !archive.is_file() {
        eprintln!(
            "data: {} is absent; the spectrogram benchmark is skipped",
            archive.display()
        );
        return;
    }
    let clips = fsdd::load(&archive, &fsdd::options()).expect("FSDD");
    let (train, _) = fsdd::official_split(&clips).expect("split");
    // The `spoken_digits` example's features and augmentation.
    let data = Spectrograms::new(
        train,
        FeatureOptions::log_mel(fsdd::SAMPLE_RATE, 256, 128, 40),
    )
    .expect("features")
    .augment(
        AudioAugment::none()
            .shift(800)
            .gain(6.0)
            .time_mask(2, 10)
            .freq_mask(2, 8),
    )
    .expect("augmentation");
    let workers = workers();
    let mut batcher =
        Batcher::new(data, BatchOptions::new(BATCH).seed(1).workers(workers)).expect("batcher");
    let mut group = c.benchmark_group("data_fsdd_real");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(
        format!("log_mel_batches64_specaugment_workers{workers}"),
        |b| {
            let mut epoch = 0;
            b.iter_custom(|iters| time_batches(&mut batcher, iters, &mut epoch));
        },
    );
    group.finish();
}

criterion_group!(benches, batcher, load, spectrograms);
criterion_main!(benches);
