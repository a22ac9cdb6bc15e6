//! Benchmarks of kiln live in `benches/`; this library holds what several of them
//! share: the models they time, declared once, their inputs and a training step.

use kiln::losses::Criterion;
use kiln::prelude::*;

kiln::model! {
    /// The CNN of the Keras CIFAR-10 tutorial.
    pub struct SeedCnn {
        input: [32, 32, 3],
        conv1: Conv2d(32, 3, relu),
        pool1: MaxPool2d(2),
        conv2: Conv2d(64, 3, relu),
        pool2: MaxPool2d(2),
        conv3: Conv2d(128, 3, relu),
        pool3: MaxPool2d(2),
        flat: Flatten,
        fc1: Dense(128, relu),
        out: Dense(10, softmax),
    }
}

kiln::model! {
    /// A small residual network for 32x32 images.
    pub struct SmallResNet {
        input: [32, 32, 3],
        stem: Conv2d(32, 3, padding = same, activation = relu),
        res1: Residual(activation = relu) {
            a: Conv2d(32, 3, padding = same, activation = relu),
            b: Conv2d(32, 3, padding = same),
        },
        res2: Residual(activation = relu) {
            a: Conv2d(64, 3, stride = 2, padding = same, activation = relu),
            b: Conv2d(64, 3, padding = same),
            shortcut: Conv2d(64, 1, stride = 2),
        },
        gap: GlobalAvgPool2d,
        out: Dense(10, softmax),
    }
}

kiln::model! {
    /// The ResNet-9 of `examples/cifar10_resnet.rs` at width 16: convolutions each
    /// followed by a batch normalisation, two residual blocks, max pooling.
    pub struct ResNet9 {
        input: [32, 32, 3],
        prep: Conv2d(16, 3, padding = same),
        prep_bn: BatchNorm(relu),
        conv1: Conv2d(32, 3, padding = same),
        bn1: BatchNorm(relu),
        pool1: MaxPool2d(2),
        res1: Residual {
            a: Conv2d(32, 3, padding = same),
            a_bn: BatchNorm(relu),
            b: Conv2d(32, 3, padding = same),
            b_bn: BatchNorm(relu),
        },
        conv2: Conv2d(64, 3, padding = same),
        bn2: BatchNorm(relu),
        pool2: MaxPool2d(2),
        conv3: Conv2d(128, 3, padding = same),
        bn3: BatchNorm(relu),
        pool3: MaxPool2d(2),
        res3: Residual {
            a: Conv2d(128, 3, padding = same),
            a_bn: BatchNorm(relu),
            b: Conv2d(128, 3, padding = same),
            b_bn: BatchNorm(relu),
        },
        pool: MaxPool2d(4),
        flat: Flatten,
        out: Dense(10),
    }
}

/// `batch` images of 32 x 32 x 3 in `[0, 1]`, the same every run.
pub fn seed_images(batch: usize) -> Vec<f32> {
    (0..batch * 32 * 32 * 3)
        .map(|i| ((i * 7919 % 256) as f32) / 255.0)
        .collect()
}

/// `batch` class labels in `0..10`, the same every run.
pub fn seed_labels(batch: usize) -> Vec<u32> {
    (0..batch as u32).map(|i| i * 7 % 10).collect()
}

/// Steps in the language model's training windows.
pub const LSTM_WINDOW: usize = 64;
/// Characters of the language model's vocabulary (tiny Shakespeare's).
pub const LSTM_VOCABULARY: usize = 65;

kiln::model! {
    /// The character language model of the `char_lstm` example: 65 characters
    /// embedded in 64 values, an LSTM of 256 units, a softmax over the next
    /// character at every step.
    pub struct CharLstm {
        input: tokens[64] of 65,
        embed: Embedding(65, 64),
        lstm: Lstm(256, return_sequences = true),
        out: TimeDense(65, softmax),
    }
}

kiln::model! {
    /// The same network one character at a time, its LSTM stateful: what generates.
    pub struct CharLstmStep {
        input: tokens[1] of 65,
        embed: Embedding(65, 64),
        lstm: Lstm(256, return_sequences = true, stateful = true),
        out: TimeDense(65, softmax),
    }
}

/// `count` deterministic token ids below the vocabulary: the inputs (as the values a
/// token tensor is uploaded from) and the next-character labels.
pub fn lstm_tokens(count: usize) -> (Vec<f32>, Vec<u32>) {
    let ids: Vec<u32> = (0..count + 1)
        .map(|i| (i as u32 * 31 + 7) % LSTM_VOCABULARY as u32)
        .collect();
    (
        ids[..count].iter().map(|&id| id as f32).collect(),
        ids[1..].to_vec(),
    )
}

/// One training step of `model` on `x` and `labels`: forward, the loss (read back,
/// as a training loop reads it), backward, the optimizer's update.
pub fn train_step<B: Backend, M: Model<B>>(
    model: &mut M,
    x: &Tensor<M::Input, B>,
    labels: &[u32],
    loss: &mut Criterion<M::Output, B>,
    optimizer: &mut Optimizer<B>,
) -> Result<f32, Box<dyn std::error::Error>> {
    let output = model.forward(x, Mode::Train)?;
    let value = loss.compute(&output, BatchTargets::Labels(labels), None)?;
    model.zero_grad()?;
    model.backward(loss.gradient(), loss.grad_at())?;
    optimizer.step(model)?;
    Ok(value)
}
