//! A character-level LSTM language model on tiny Shakespeare: token ids through an
//! embedding, an LSTM and a softmax at every step, trained on random windows of the
//! first 90 % of the text; the validation loss (nats per character) is read over the
//! last 10 %, then a sample is generated one character at a time, the LSTM keeping
//! its state between characters.
//!
//! ```text
//! cargo run --release --example char_lstm -- [--steps N] [--batch-size N] [--seed N]
//!     [--data FILE] [--learning-rate X] [--temperature X] [--top-k N] [--sample N]
//! ```
//!
//! Without `--data`, the text is downloaded as char-rnn published it (into
//! `KILN_DATA_DIR`, else the user's cache folder), its MD5 checked. The same model in
//! PyTorch, on the same data for the same steps: `examples/python/char_lstm_torch.py`.

use std::path::PathBuf;
use std::time::Instant;

use kiln::data::text::{self, Windows};
use kiln::kernels::rng::Rng;
use kiln::losses::SequenceCriterion;
use kiln::prelude::*;
use kiln::shape::Tokens;
use kiln_examples::language::{Measured, describe, read_corpus, sample, validation_loss};

/// Characters a training window and an evaluation window hold.
const WINDOW: usize = 64;
/// The largest vocabulary the model takes (tiny Shakespeare has 65 characters).
const VOCABULARY: usize = 65;

kiln::model! {
    /// The language model: 65 characters, embedded in 64 values, one LSTM layer of
    /// 256 units, a softmax over the next character at every step.
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

/// A character-level LSTM language model on tiny Shakespeare: validation loss in
/// nats per character, then a generated sample.
#[derive(clap::Parser, Clone, Debug)]
struct Options {
    /// Training steps (batches).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    steps: u64,
    /// Windows of 64 characters a batch.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// The seed of initialisation, windows and sampling.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// The text file (default: tiny Shakespeare, downloaded and verified).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Adam's learning rate.
    #[arg(long, value_name = "X", default_value_t = 2e-3)]
    learning_rate: f64,
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
    let (path, corpus) = read_corpus(o.data.as_deref(), VOCABULARY)?;
    let vocabulary = corpus.vocabulary();
    let (train, validation) = corpus.split(0.9)?;
    println!("{}", <CharLstm>::summary());
    describe(&path, &corpus, train, validation);

    let cpu = Cpu::new()?;
    let batch = o.batch_size as usize;
    let mut model = CharLstm::new(&cpu, batch, o.seed)?;
    let mut loss = SequenceCriterion::<WINDOW, VOCABULARY, Cpu>::new(
        Loss::sparse_categorical_crossentropy(),
        &cpu,
        batch,
        <CharLstm>::OUTPUT_ACTIVATION,
    )?;
    let mut optimizer = Optimizer::new(Adam {
        learning_rate: o.learning_rate,
        ..Adam::pytorch()
    })
    .clip_global_norm(5.0);
    let mut windows = Windows::new(train, WINDOW, o.seed)?;
    let (mut ids, mut next) = (vec![0; batch * WINDOW], vec![0; batch * WINDOW]);
    let mut x = Tensor::<Tokens<WINDOW, VOCABULARY>, Cpu>::zeros(&cpu, batch)?;
    let mut host = vec![0.0f32; batch * WINDOW];

    let started = Instant::now();
    let mut recent = 0.0;
    let steps = o.steps as usize;
    for step in 1..=steps {
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
                "step {step:>5}: training loss {:.4} ({:.0} s)",
                recent / n as f64,
                started.elapsed().as_secs_f64()
            );
            recent = 0.0;
        }
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let tokens_per_second = (steps * batch * WINDOW) as f64 / train_seconds;

    let val_loss = validation_loss(&mut model, &mut loss, validation, batch)?;
    let measured = Measured {
        val_loss,
        train_seconds,
        tokens_per_second,
        steps: o.steps,
    };
    measured.print_validation();
    let sample = generate(&model, vocabulary, "ROMEO:", &o)?;
    measured.print_sample_and_result(&sample, o.temperature, o.top_k);
    Ok(())
}

/// `prompt`, then `o.sample` characters drawn one at a time from the model's next-
/// character distribution (sharpened by the temperature, cut to the top k), the
/// LSTM's state carried from each character to the next.
fn generate(
    trained: &CharLstm,
    vocabulary: &text::Vocabulary,
    prompt: &str,
    o: &Options,
) -> Result<String, Box<dyn std::error::Error>> {
    let cpu = trained.backend().clone();
    let mut step = CharLstmStep::new(&cpu, 1, o.seed)?;
    // The same layers, one step long: the weights carry over by name.
    let mut weights = Vec::new();
    trained.parameters(&mut |p| {
        weights.push((p.layer, p.name, cpu.to_host(p.value, p.shape.size())?));
        Ok(())
    })?;
    step.visit_parameters(&mut |p| {
        let found = weights
            .iter()
            .find(|(l, n, _)| *l == p.layer && *n == p.name);
        match found {
            Some((_, _, values)) => cpu.upload(values, p.value),
            None => Ok(()),
        }
    })?;
    let mut rng = Rng::new(o.seed ^ 0x5eed);
    let mut text = String::from(prompt);
    let mut probabilities = vec![0.0f32; VOCABULARY];
    if prompt.is_empty() {
        return Err("the prompt is empty".into());
    }
    for c in prompt.chars() {
        let id = vocabulary
            .id(c)
            .ok_or_else(|| format!("the prompt's {c:?} is not in the text's vocabulary"))?;
        let out = step.forward_host(&[id as f32], Mode::Eval)?;
        cpu.download(out.buffer(), &mut probabilities)?;
    }
    for _ in 0..o.sample {
        let id = sample(
            &probabilities[..vocabulary.len()],
            o.temperature,
            o.top_k as usize,
            &mut rng,
        );
        text.push_str(&vocabulary.decode(&[id]));
        let out = step.forward_host(&[id as f32], Mode::Eval)?;
        cpu.download(out.buffer(), &mut probabilities)?;
    }
    Ok(text)
}
