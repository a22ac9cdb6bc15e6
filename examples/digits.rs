//! Trains a small CNN on the 8x8 handwritten digits that ship with kiln, on the CPU,
//! with Adam and sparse categorical cross-entropy, and reports the test accuracy.
//!
//! ```text
//! cargo run --release --example digits -- [--epochs N] [--batch-size N] [--lr X] [--seed N]
//! ```

use std::time::Instant;

use kiln::kernels::rng::Rng;
use kiln::prelude::*;
use kiln_examples::digits::{Digits, PIXELS};
use kiln_examples::step::Trainer;

kiln::model! {
    /// Conv, pool, dense: the seed CNN's pattern at the digits' scale.
    pub struct DigitsCnn {
        input: [8, 8, 1],
        conv1: Conv2d(32, 3, relu, padding = same),
        pool1: MaxPool2d(2),
        conv2: Conv2d(64, 3, relu),
        flat: Flatten,
        fc1: Dense(64, relu),
        out: Dense(10, softmax),
    }
}

struct Args {
    epochs: usize,
    batch_size: usize,
    lr: f64,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        epochs: 15,
        batch_size: 32,
        lr: 1e-3,
        seed: 7,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--epochs" => args.epochs = value()?.parse().map_err(|e| format!("--epochs: {e}"))?,
            "--batch-size" => {
                args.batch_size = value()?.parse().map_err(|e| format!("--batch-size: {e}"))?
            }
            "--lr" => args.lr = value()?.parse().map_err(|e| format!("--lr: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            other => {
                return Err(format!(
                    "unknown argument `{other}`; expected --epochs, --batch-size, --lr or --seed"
                ));
            }
        }
    }
    if args.batch_size == 0 || args.epochs == 0 {
        return Err("--epochs and --batch-size must be at least 1".into());
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let data = Digits::load()?;
    // scikit-learn's rows are in acquisition order; the last 297 (one writer group)
    // are the test set.
    let (train, test) = data.split_at(1500);
    let cpu = Cpu::new()?;
    println!("{}", <DigitsCnn>::summary());
    println!(
        "training on {} digits, testing on {}, {}",
        train.len(),
        test.len(),
        cpu.name()
    );

    let mut model = DigitsCnn::new(&cpu, args.batch_size.max(test.len()), args.seed)?;
    let mut trainer = Trainer::new(
        &model,
        Adam {
            learning_rate: args.lr,
            ..Adam::default()
        },
    )?;
    let mut rng = Rng::new(args.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut images = vec![0.0; args.batch_size * PIXELS];
    let mut labels = vec![0u8; args.batch_size];
    let started = Instant::now();
    let mut seen = 0usize;
    for epoch in 1..=args.epochs {
        let epoch_start = Instant::now();
        // Fisher-Yates with the seeded generator: a new order every epoch.
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let (mut loss_sum, mut correct) = (0.0, 0);
        for batch in order.chunks(args.batch_size) {
            for (slot, &i) in batch.iter().enumerate() {
                images[slot * PIXELS..(slot + 1) * PIXELS]
                    .copy_from_slice(&train.images[i * PIXELS..(i + 1) * PIXELS]);
                labels[slot] = train.labels[i];
            }
            let n = batch.len();
            let stats = trainer.step(&mut model, &images[..n * PIXELS], &labels[..n])?;
            loss_sum += stats.loss * n as f32;
            correct += stats.correct;
        }
        seen += train.len();
        let eval = trainer.evaluate(&mut model, &test.images, &test.labels)?;
        println!(
            "epoch {epoch:>2}/{}: loss {:.4}, accuracy {:.4}, test loss {:.4}, test accuracy {:.4}, {:.0} images/s",
            args.epochs,
            loss_sum / train.len() as f32,
            correct as f32 / train.len() as f32,
            eval.loss,
            eval.correct as f32 / test.len() as f32,
            train.len() as f64 / epoch_start.elapsed().as_secs_f64(),
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    let eval = trainer.evaluate(&mut model, &test.images, &test.labels)?;
    println!(
        "result: {{\"test_accuracy\": {:.4}, \"test_loss\": {:.4}, \"train_seconds\": {:.2}, \"images_per_second\": {:.0}}}",
        eval.correct as f32 / test.len() as f32,
        eval.loss,
        seconds,
        seen as f64 / seconds
    );
    Ok(())
}
