//! nanoGPT's character model on tiny Shakespeare, at the configuration its README
//! gives for a CPU: 4 pre-norm Transformer blocks of width 128 with 4 causal heads,
//! a context of 64 characters, batches of 12, 2,000 steps of AdamW (learning rate
//! 1e-3 warmed up over 100 steps, then a cosine down to 1e-4; betas 0.9 and 0.99;
//! weight decay 0.1 on the matrices only; gradients clipped to a norm of 1), no
//! dropout. The validation loss (nats per character) is read over the last 10 % of
//! the text, then a sample is generated one character at a time.
//!
//! ```text
//! cargo run --release --example char_gpt -- [--steps N] [--batch-size N] [--seed N]
//!     [--data FILE] [--learning-rate X] [--min-learning-rate X] [--warmup N]
//!     [--weight-decay X] [--temperature X] [--top-k N] [--sample N]
//! ```
//!
//! Without `--data`, the text is downloaded as char-rnn published it (into
//! `KILN_DATA_DIR`, else the user's cache folder), its MD5 checked. The same model in
//! PyTorch, on the same data for the same steps: `examples/python/char_gpt_torch.py`.
//!
//! The model's sizes are its type: `--layers`, `--heads`, `--width` and `--context`
//! are checked against it, and a window longer than the context does not compile.

use std::path::PathBuf;
use std::time::Instant;

use kiln::data::text::{self, Windows};
use kiln::kernels::rng::Rng;
use kiln::losses::SequenceCriterion;
use kiln::optim::{CosineDecay, ParamGroup, Schedule};
use kiln::prelude::*;
use kiln::shape::Tokens;
use kiln_examples::language::{Measured, describe, read_corpus, sample, validation_loss};

/// Characters a window holds: the model's context.
const CONTEXT: usize = 64;
/// The largest vocabulary the model takes (tiny Shakespeare has 65 characters).
const VOCABULARY: usize = 65;
/// Blocks, heads and width of the model below.
const SIZES: (usize, usize, usize) = (4, 4, 128);

/// A GPT of pre-norm blocks: each block is two residual blocks of `model!`, one
/// around causal self-attention, one around the MLP (width x 4, GELU).
macro_rules! gpt {
    ($(#[$doc:meta])* $name:ident, $($attention:ident / $mlp:ident),+) => {
        kiln::model! {
            $(#[$doc])*
            pub struct $name {
                input: tokens[64] of 65,
                embed: Embedding(65, 128),
                position: PositionEmbedding(64),
                $(
                    $attention: Residual {
                        ln: LayerNorm,
                        attn: MultiHeadAttention(4, causal = true),
                    },
                    $mlp: Residual {
                        ln: LayerNorm,
                        fc: TimeDense(512, gelu),
                        proj: TimeDense(128),
                    },
                )+
                ln_f: LayerNorm,
                head: TimeDense(65, softmax),
            }
        }
    };
}

gpt!(
    /// nanoGPT's character model at its CPU configuration.
    CharGpt,
    attn0 / mlp0,
    attn1 / mlp1,
    attn2 / mlp2,
    attn3 / mlp3
);

/// nanoGPT's character model on tiny Shakespeare: validation loss in nats per
/// character, then a generated sample.
#[derive(clap::Parser, Clone, Debug)]
struct Options {
    /// Training steps (batches).
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    steps: u64,
    /// Windows of 64 characters a batch.
    #[arg(long, value_name = "N", default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Transformer blocks (the model's type has 4).
    #[arg(long, value_name = "N", default_value_t = SIZES.0)]
    layers: usize,
    /// Attention heads (the model's type has 4).
    #[arg(long, value_name = "N", default_value_t = SIZES.1)]
    heads: usize,
    /// Model width (the model's type has 128).
    #[arg(long, value_name = "N", default_value_t = SIZES.2)]
    width: usize,
    /// Context in characters (the model's type has 64).
    #[arg(long, value_name = "N", default_value_t = CONTEXT)]
    context: usize,
    /// The seed of initialisation, windows and sampling.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// The text file (default: tiny Shakespeare, downloaded and verified).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// AdamW's peak learning rate.
    #[arg(long, value_name = "X", default_value_t = 1e-3)]
    learning_rate: f64,
    /// The learning rate at the end of the cosine.
    #[arg(long, value_name = "X", default_value_t = 1e-4)]
    min_learning_rate: f64,
    /// Steps of linear warm-up.
    #[arg(long, value_name = "N", default_value_t = 100)]
    warmup: u64,
    /// Decoupled weight decay of the matrices (biases and LayerNorm get none).
    #[arg(long, value_name = "X", default_value_t = 0.1)]
    weight_decay: f64,
    /// Sampling temperature (below 1 sharpens the distribution).
    #[arg(long, value_name = "X", default_value_t = 0.8)]
    temperature: f64,
    /// Sample among the k most likely characters.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    top_k: u64,
    /// Characters to generate.
    #[arg(long, value_name = "N", default_value_t = 400)]
    sample: usize,
}

fn main() -> std::process::ExitCode {
    kiln_examples::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let o = <Options as clap::Parser>::parse();
    if o.temperature.is_nan() || o.temperature <= 0.0 {
        return Err(format!("--temperature must be positive, got {}", o.temperature).into());
    }
    if (o.layers, o.heads, o.width) != SIZES || o.context != CONTEXT {
        return Err(format!(
            "this build's model is {} blocks, {} heads, width {}, context {CONTEXT} (its sizes are its type): change `gpt!` to train another",
            SIZES.0, SIZES.1, SIZES.2
        )
        .into());
    }
    let (path, corpus) = read_corpus(o.data.as_deref(), VOCABULARY)?;
    let vocabulary = corpus.vocabulary();
    let (train, validation) = corpus.split(0.9)?;
    println!("{}", <CharGpt>::summary());
    describe(&path, &corpus, train, validation);

    let cpu = Cpu::new()?;
    let batch = o.batch_size as usize;
    let mut model = CharGpt::new(&cpu, batch, o.seed)?;
    let mut loss = SequenceCriterion::<CONTEXT, VOCABULARY, Cpu>::new(
        Loss::sparse_categorical_crossentropy(),
        &cpu,
        batch,
        <CharGpt>::OUTPUT_ACTIVATION,
    )?;
    let mut optimizer = Optimizer::new(AdamW {
        adam: Adam {
            learning_rate: o.learning_rate,
            beta2: 0.99,
            ..Adam::pytorch()
        },
        weight_decay: o.weight_decay,
    })
    // nanoGPT decays the tensors of two or more dimensions only.
    .group(
        ParamGroup::new()
            .kinds(["LayerNorm"])
            .names(["*.bias", "*_bias"])
            .weight_decay(0.0),
    )
    .clip_global_norm(1.0);
    let mut windows = Windows::new(train, CONTEXT, o.seed)?;
    let (mut ids, mut next) = (vec![0; batch * CONTEXT], vec![0; batch * CONTEXT]);
    let mut x = Tensor::<Tokens<CONTEXT, VOCABULARY>, Cpu>::zeros(&cpu, batch)?;
    let mut host = vec![0.0f32; batch * CONTEXT];

    // nanoGPT's get_lr: a linear warm-up, then a cosine down to the floor at the
    // last step.
    let schedule = CosineDecay::nanogpt(o.learning_rate, o.warmup, o.steps, o.min_learning_rate);

    let started = Instant::now();
    let mut recent = 0.0;
    let steps = o.steps as usize;
    for step in 1..=steps {
        optimizer.set_learning_rate(schedule.learning_rate(step as u64 - 1))?;
        windows.fill(&mut ids, &mut next)?;
        for (h, &id) in host.iter_mut().zip(&ids) {
            *h = id as f32;
        }
        x.upload(&cpu, &host)?;
        let out = model.forward(&x, Mode::Train)?;
        recent += f64::from(loss.compute(&out, &next, None)?);
        model.zero_grad()?;
        model.backward(loss.gradient(), loss.grad_at())?;
        optimizer.step(&mut model)?;
        if step % 100 == 0 || step == steps {
            let n = if step % 100 == 0 { 100 } else { step % 100 };
            println!(
                "step {step:>5}: training loss {:.4}, learning rate {:.2e} ({:.0} s)",
                recent / n as f64,
                optimizer.learning_rate(),
                started.elapsed().as_secs_f64()
            );
            recent = 0.0;
        }
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let tokens_per_second = (steps * batch * CONTEXT) as f64 / train_seconds;

    let val_loss = validation_loss(&mut model, &mut loss, validation, batch)?;
    let measured = Measured {
        val_loss,
        train_seconds,
        tokens_per_second,
        steps: o.steps,
    };
    measured.print_validation();
    let sample = generate(&mut model, vocabulary, "ROMEO:", &o)?;
    measured.print_sample_and_result(&sample, o.temperature, o.top_k);
    Ok(())
}

/// `prompt`, then `o.sample` characters, each drawn from the model's next-character
/// distribution at the last position of the text's last 64 characters (sharpened by
/// the temperature, cut to the top k). A shorter text sits at the window's start:
/// with causal attention, what follows it changes nothing before it.
fn generate(
    model: &mut CharGpt,
    vocabulary: &text::Vocabulary,
    prompt: &str,
    o: &Options,
) -> Result<String, Box<dyn std::error::Error>> {
    let cpu = model.backend().clone();
    if prompt.is_empty() {
        return Err("the prompt is empty".into());
    }
    let mut ids = vocabulary.encode(prompt)?;
    let mut rng = Rng::new(o.seed ^ 0x5eed);
    let mut window = vec![0.0f32; CONTEXT];
    let mut probabilities = vec![0.0f32; CONTEXT * VOCABULARY];
    for _ in 0..o.sample {
        let recent = &ids[ids.len().saturating_sub(CONTEXT)..];
        window.fill(0.0);
        for (w, &id) in window.iter_mut().zip(recent) {
            *w = id as f32;
        }
        let out = model.forward_host(&window, Mode::Eval)?;
        cpu.download(out.buffer(), &mut probabilities)?;
        let last = (recent.len() - 1) * VOCABULARY;
        let p = &probabilities[last..last + vocabulary.len()];
        ids.push(sample(p, o.temperature, o.top_k as usize, &mut rng));
    }
    Ok(vocabulary.decode(&ids))
}
