//! The training step of the `char_gpt` example's model at nanoGPT's CPU configuration
//! (4 pre-norm blocks of width 128, 4 causal heads, a context of 64, a vocabulary of
//! 65, batches of 12): forward, the loss at every step read back, backward, AdamW
//! with two parameter groups and clipping by the global norm, as the example trains.
//! Groups `gpt_batch12_threads{t}` on 1 and 2 threads (or `KILN_THREADS`), throughput
//! in tokens (12 windows of 64). `cargo xtask bench` runs PyTorch's same step
//! (`benches/python/gpt_torch.py`) in the same run and reports the ratio.

// A benchmark whose setup fails has nothing to measure: it stops with the error.
#![allow(clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln::losses::SequenceCriterion;
use kiln::optim::ParamGroup;
use kiln::prelude::*;

const CONTEXT: usize = 64;
const VOCABULARY: usize = 65;
const BATCH: usize = 12;

kiln::model! {
    /// nanoGPT's character model at its CPU configuration, as `char_gpt` builds it.
    pub struct Gpt {
        input: tokens[64] of 65,
        embed: Embedding(65, 128),
        position: PositionEmbedding(64),
        attn0: Residual { ln: LayerNorm, attn: MultiHeadAttention(4, causal = true) },
        mlp0: Residual { ln: LayerNorm, fc: TimeDense(512, gelu), proj: TimeDense(128) },
        attn1: Residual { ln: LayerNorm, attn: MultiHeadAttention(4, causal = true) },
        mlp1: Residual { ln: LayerNorm, fc: TimeDense(512, gelu), proj: TimeDense(128) },
        attn2: Residual { ln: LayerNorm, attn: MultiHeadAttention(4, causal = true) },
        mlp2: Residual { ln: LayerNorm, fc: TimeDense(512, gelu), proj: TimeDense(128) },
        attn3: Residual { ln: LayerNorm, attn: MultiHeadAttention(4, causal = true) },
        mlp3: Residual { ln: LayerNorm, fc: TimeDense(512, gelu), proj: TimeDense(128) },
        ln_f: LayerNorm,
        head: TimeDense(65, softmax),
    }
}

fn thread_counts() -> Vec<usize> {
    match std::env::var("KILN_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(t) => vec![t],
        None => vec![1, 2],
    }
}

/// Token ids and next tokens of `n` steps: a fixed pseudo-text.
fn tokens(n: usize) -> (Vec<f32>, Vec<u32>) {
    let id = |i: usize| ((i * 7 + i / 5) % VOCABULARY) as u32;
    (
        (0..n).map(|i| id(i) as f32).collect(),
        (1..=n).map(id).collect(),
    )
}

fn bench_gpt(c: &mut Criterion) {
    for threads in thread_counts() {
        let cpu = Cpu::with_threads(threads).expect("threads");
        let mut model = Gpt::new(&cpu, BATCH, 1).expect("model");
        let (ids, next) = tokens(BATCH * CONTEXT);
        let x =
            Tensor::<<Gpt as Model<Cpu>>::Input, Cpu>::from_slice(&cpu, BATCH, &ids).expect("x");
        let mut loss = SequenceCriterion::<CONTEXT, VOCABULARY, Cpu>::new(
            Loss::sparse_categorical_crossentropy(),
            &cpu,
            BATCH,
            <Gpt>::OUTPUT_ACTIVATION,
        )
        .expect("loss");
        let mut optimizer = Optimizer::new(AdamW {
            adam: Adam {
                learning_rate: 1e-3,
                beta2: 0.99,
                ..Adam::pytorch()
            },
            weight_decay: 0.1,
        })
        .group(
            ParamGroup::new()
                .kinds(["LayerNorm"])
                .names(["*.bias", "*_bias"])
                .weight_decay(0.0),
        )
        .clip_global_norm(1.0);
        let mut group = c.benchmark_group(format!("gpt_batch{BATCH}_threads{threads}"));
        group.throughput(Throughput::Elements((BATCH * CONTEXT) as u64));
        group.sample_size(30);
        group.bench_function("train_step", |b| {
            b.iter(|| {
                let out = model.forward(&x, Mode::Train).expect("forward");
                loss.compute(&out, &next, None).expect("loss");
                model.zero_grad().expect("zero_grad");
                model
                    .backward(loss.gradient(), loss.grad_at())
                    .expect("backward");
                optimizer.step(&mut model).expect("step");
            });
        });
        group.finish();
    }
}

criterion_group!(benches, bench_gpt);
criterion_main!(benches);
