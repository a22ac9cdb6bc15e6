//! What the character-level language models share: their text, their validation
//! loss over consecutive windows, and how a character is drawn from a predicted
//! distribution.

use std::path::{Path, PathBuf};

use kiln::data::Cache;
use kiln::data::text::{self, Corpus};
use kiln::kernels::rng::Rng;
use kiln::losses::SequenceCriterion;
use kiln::prelude::*;
use kiln::shape::Rank2;

/// The text at `data`, else tiny Shakespeare (downloaded and verified), with its
/// path; an error if it has more distinct characters than `vocabulary`.
pub fn read_corpus(
    data: Option<&Path>,
    vocabulary: usize,
) -> Result<(PathBuf, Corpus), Box<dyn std::error::Error>> {
    let path = match data {
        Some(path) => path.to_path_buf(),
        None => text::tiny_shakespeare(&Cache::from_env()?)?,
    };
    let corpus = Corpus::read(&path)?;
    let distinct = corpus.vocabulary().len();
    if distinct > vocabulary {
        return Err(format!(
            "{}: {distinct} distinct characters, more than the model's {vocabulary}",
            path.display()
        )
        .into());
    }
    Ok((path, corpus))
}

/// Prints the text's size and its split.
pub fn describe(path: &Path, corpus: &Corpus, train: &[u32], validation: &[u32]) {
    println!(
        "{}: {} characters ({} distinct), {} to train, {} to validate",
        path.display(),
        corpus.tokens().len(),
        corpus.vocabulary().len(),
        train.len(),
        validation.len()
    );
}

/// The mean loss over every character of `validation` that a whole window of `T`
/// predicts (windows read in order, each from the model's initial state), in
/// batches of `batch` windows.
pub fn validation_loss<const T: usize, const V: usize, M>(
    model: &mut M,
    loss: &mut SequenceCriterion<T, V, Cpu>,
    validation: &[u32],
    batch: usize,
) -> Result<f64, Box<dyn std::error::Error>>
where
    M: Model<Cpu, Output = Rank2<T, V>>,
{
    let windows: Vec<_> = text::consecutive_windows(validation, T)?.collect();
    let (mut sum, mut count) = (0.0, 0usize);
    for group in windows.chunks(batch) {
        let host: Vec<f32> = group
            .iter()
            .flat_map(|(x, _)| x.iter().map(|&t| t as f32))
            .collect();
        let next: Vec<u32> = group.iter().flat_map(|(_, y)| y.iter().copied()).collect();
        let out = model.forward_host(&host, Mode::Eval)?;
        let value = loss.compute(&out, &next, None)?;
        sum += f64::from(value) * next.len() as f64;
        count += next.len();
    }
    Ok(sum / count.max(1) as f64)
}

/// A token drawn from `p` raised to `1 / temperature`, among its `top_k` most likely.
pub fn sample(p: &[f32], temperature: f64, top_k: usize, rng: &mut Rng) -> u32 {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    order.truncate(top_k.max(1));
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| f64::from(p[i]).max(1e-30).powf(1.0 / temperature))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut draw = f64::from(rng.uniform()) * total;
    for (&i, w) in order.iter().zip(&weights) {
        if draw < *w {
            return i as u32;
        }
        draw -= w;
    }
    order[0] as u32
}

/// What a language model's training measured: printed when validation ends, and
/// reported with a generated sample as the example's `result: {json}` line.
pub struct Measured {
    /// Mean validation loss, nats per character.
    pub val_loss: f64,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// Training tokens per second.
    pub tokens_per_second: f64,
    /// Training steps taken.
    pub steps: u64,
}

impl Measured {
    /// The validation loss in nats and bits per character, and the training speed.
    pub fn print_validation(&self) {
        println!(
            "validation loss {:.4} nats per character ({:.3} bits), {:.0} training tokens/s",
            self.val_loss,
            self.val_loss / std::f64::consts::LN_2,
            self.tokens_per_second
        );
    }

    /// The sample drawn at `temperature` from the `top_k` likeliest characters, then
    /// the result line.
    pub fn print_sample_and_result(&self, sample: &str, temperature: f64, top_k: u64) {
        println!("sample (temperature {temperature}, top-{top_k}):\n{sample}");
        let result = crate::report::Json::new()
            .number("val_loss", self.val_loss, 4)
            .number("train_seconds", self.train_seconds, 1)
            .number("tokens_per_second", self.tokens_per_second, 0)
            .number("steps", self.steps as f64, 0);
        println!("result: {result}");
    }
}
