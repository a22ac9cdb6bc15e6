//! A generated model trained for a few hundred steps with SGD and momentum on the
//! real 8x8 digits: the loss must fall and the accuracy rise well above chance.

use std::io::Write;

use kiln::prelude::*;
use kiln_examples::digits::{self, Digits, PIXELS};
use kiln_examples::step::Trainer;

kiln::model! {
    /// A small CNN, with dropout and a stride-2 convolution so that both train.
    pub struct Net {
        input: [8, 8, 1],
        conv1: Conv2d(filters = 16, kernel = (3, 3), stride = 1, padding = same, activation = relu),
        conv2: Conv2d(filters = 32, kernel = 3, stride = 2, padding = same, activation = relu),
        flat: Flatten,
        drop: Dropout(0.1),
        fc: Dense(32, tanh),
        out: Dense(10, softmax),
    }
}

#[test]
fn shipped_digits_are_the_shared_ones() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/small/digits.csv.gz");
    if !shared.exists() {
        // Straight to stderr: the test harness captures `eprintln!`, and a skip must show.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {} is absent (only the shipped copy is checked)",
            shared.display()
        );
        return;
    }
    assert_eq!(
        std::fs::read(shared).unwrap(),
        std::fs::read(digits::shipped_path()).unwrap()
    );
}

#[test]
fn loss_falls_and_accuracy_rises() {
    let data = Digits::load().unwrap();
    let (train, test) = data.split_at(1500);
    let cpu = Cpu::with_threads(2).unwrap();
    let batch = 32;
    let mut model = Net::new(&cpu, test.len(), 3).unwrap();
    let mut trainer = Trainer::new(
        &model,
        Sgd {
            learning_rate: 0.05,
            momentum: 0.9,
            nesterov: false,
        },
    )
    .unwrap();

    let before = trainer
        .evaluate(&mut model, &test.images, &test.labels)
        .unwrap();
    let mut first_epoch_loss = None;
    let mut last_epoch_loss = 0.0;
    for _epoch in 0..8 {
        // 47 steps an epoch, 376 in all.
        let mut loss = 0.0;
        for (images, labels) in train
            .images
            .chunks(batch * PIXELS)
            .zip(train.labels.chunks(batch))
        {
            loss += trainer.step(&mut model, images, labels).unwrap().loss * labels.len() as f32;
        }
        last_epoch_loss = loss / train.len() as f32;
        first_epoch_loss.get_or_insert(last_epoch_loss);
    }
    let after = trainer
        .evaluate(&mut model, &test.images, &test.labels)
        .unwrap();
    let accuracy = after.correct as f32 / test.len() as f32;
    println!(
        "test loss {:.3} -> {:.3}, train loss (epoch 1 -> 8) {:.3} -> {last_epoch_loss:.3}, test accuracy {:.3} -> {accuracy:.3}",
        before.loss,
        after.loss,
        first_epoch_loss.unwrap(),
        before.correct as f32 / test.len() as f32
    );
    assert!(
        after.loss < 0.5 * before.loss,
        "test loss {} -> {}",
        before.loss,
        after.loss
    );
    assert!(last_epoch_loss < 0.5 * first_epoch_loss.unwrap());
    assert!(accuracy > 0.85, "test accuracy {accuracy}, chance is 0.1");
}
