//! Text for language models: a character vocabulary and tokenizer, a corpus split
//! into training and validation text (the first 90 % and the last 10 %, as nanoGPT
//! splits tiny Shakespeare), random windows for training batches, consecutive
//! windows for evaluation, and padding with masks for sequences of unequal length.
//!
//! ```
//! use kiln_data::text::{Corpus, Windows};
//!
//! let corpus = Corpus::from_text("tiny", "to be or not to be")?;
//! assert_eq!(corpus.vocabulary().len(), 7);
//! let (train, validation) = corpus.split(0.9)?;
//! let mut windows = Windows::new(train, 4, 1)?;
//! let (mut x, mut y) = ([0; 8], [0; 8]);
//! windows.fill(&mut x, &mut y)?;
//! // Each target is the token after its input.
//! assert_eq!(&x[1..4], &y[..3]);
//! assert!(!validation.is_empty());
//! # Ok::<(), kiln_data::Error>(())
//! ```

use std::path::{Path, PathBuf};

use crate::cache::{Cache, Remote};
use crate::checksum::Checksum;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The tiny Shakespeare corpus (1,115,394 characters, 65 distinct) as char-rnn
/// published it, with its MD5.
pub fn tiny_shakespeare_remote() -> Remote {
    Remote::new(
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare",
        "input.txt",
        Checksum::Md5("6fb458f1232090904fb40fe944165e91".into()),
    )
}

/// The tiny Shakespeare file in `cache`, downloaded (and its checksum verified) on
/// first use.
pub fn tiny_shakespeare(cache: &Cache) -> Result<PathBuf> {
    cache.fetch(&tiny_shakespeare_remote(), "tinyshakespeare")
}

/// The distinct characters of a text, sorted: character `i` is token `i`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    chars: Vec<char>,
}

impl Vocabulary {
    /// The characters of `text`.
    pub fn of(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Self { chars }
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The token of `c`, if it is in the vocabulary.
    pub fn id(&self, c: char) -> Option<u32> {
        self.chars.binary_search(&c).ok().map(|i| i as u32)
    }

    /// The tokens of `text`; a character outside the vocabulary is an error naming
    /// it and its place.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .enumerate()
            .map(|(i, c)| {
                self.id(c).ok_or_else(|| {
                    Error::Config(format!(
                        "character {c:?} at position {i} is not in the vocabulary of {} characters",
                        self.len()
                    ))
                })
            })
            .collect()
    }

    /// The text of `tokens`; an id outside the vocabulary becomes `�`.
    pub fn decode(&self, tokens: &[u32]) -> String {
        tokens
            .iter()
            .map(|&t| self.chars.get(t as usize).copied().unwrap_or('\u{fffd}'))
            .collect()
    }
}

/// A text as tokens, with its vocabulary.
#[derive(Clone, Debug)]
pub struct Corpus {
    name: String,
    vocabulary: Vocabulary,
    tokens: Vec<u32>,
}

impl Corpus {
    /// The corpus of `text`, its vocabulary its own characters; `name` is what errors
    /// call it. An empty text is an error.
    pub fn from_text(name: &str, text: &str) -> Result<Self> {
        if text.is_empty() {
            return Err(Error::Empty {
                path: PathBuf::from(name),
            });
        }
        let vocabulary = Vocabulary::of(text);
        let tokens = vocabulary.encode(text)?;
        Ok(Self {
            name: name.to_string(),
            vocabulary,
            tokens,
        })
    }

    /// The corpus of the UTF-8 file at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_text(&path.display().to_string(), &text)
    }

    /// The vocabulary.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    /// Every token, in order.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The first `fraction` of the tokens for training and the rest for validation;
    /// both must be non-empty.
    pub fn split(&self, fraction: f64) -> Result<(&[u32], &[u32])> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::Config(format!(
                "the training fraction must lie in (0, 1), got {fraction}"
            )));
        }
        let at = (self.tokens.len() as f64 * fraction).round() as usize;
        if at == 0 || at >= self.tokens.len() {
            return Err(Error::Config(format!(
                "{}: {} tokens are too few to split {fraction} / {}",
                self.name,
                self.tokens.len(),
                1.0 - fraction
            )));
        }
        Ok(self.tokens.split_at(at))
    }
}

/// Training batches of random windows of a token stream: the inputs are `window`
/// consecutive tokens from a random start, the targets the `window` tokens after
/// each (the next token at every step).
#[derive(Clone, Debug)]
pub struct Windows<'a> {
    tokens: &'a [u32],
    window: usize,
    rng: Rng,
}

impl<'a> Windows<'a> {
    /// Windows of `window` tokens over `tokens`, drawn from `seed`; the stream must
    /// hold at least one window and its next token.
    pub fn new(tokens: &'a [u32], window: usize, seed: u64) -> Result<Self> {
        check_window(tokens, window)?;
        Ok(Self {
            tokens,
            window,
            rng: Rng::new(seed),
        })
    }

    /// Fills `inputs` and `targets` (each `batch * window`) with `batch` windows.
    pub fn fill(&mut self, inputs: &mut [u32], targets: &mut [u32]) -> Result<()> {
        let w = self.window;
        if inputs.len() != targets.len() || !inputs.len().is_multiple_of(w) {
            return Err(Error::Config(format!(
                "inputs ({}) and targets ({}) must hold the same whole number of windows of {w}",
                inputs.len(),
                targets.len()
            )));
        }
        let starts = self.tokens.len() - w;
        for (x, y) in inputs.chunks_exact_mut(w).zip(targets.chunks_exact_mut(w)) {
            let s = self.rng.below(starts);
            x.copy_from_slice(&self.tokens[s..s + w]);
            y.copy_from_slice(&self.tokens[s + 1..s + 1 + w]);
        }
        Ok(())
    }
}

/// The consecutive windows of `tokens` (inputs and next-token targets), the last
/// partial one left out: how validation text is read once, every token but the
/// tail predicted.
pub fn consecutive_windows(
    tokens: &[u32],
    window: usize,
) -> Result<impl Iterator<Item = (&[u32], &[u32])>> {
    check_window(tokens, window)?;
    let count = (tokens.len() - 1) / window;
    Ok((0..count).map(move |i| {
        let s = i * window;
        (&tokens[s..s + window], &tokens[s + 1..s + 1 + window])
    }))
}

fn check_window(tokens: &[u32], window: usize) -> Result<()> {
    if window == 0 {
        return Err(Error::Config("a window holds at least one token".into()));
    }
    if tokens.len() <= window {
        return Err(Error::Config(format!(
            "a text of {} tokens is shorter than a window of {window} and its next token: use a longer text or a shorter window",
            tokens.len()
        )));
    }
    Ok(())
}

/// Sequences of unequal length as one block of `len` tokens each: each cut or
/// padded with `pad` to `len`, with a mask of 1 where a token is real and 0 where it
/// is padding (what a masked loss takes).
pub fn pad(sequences: &[&[u32]], len: usize, pad: u32) -> (Vec<u32>, Vec<f32>) {
    let mut ids = vec![pad; sequences.len() * len];
    let mut mask = vec![0.0; sequences.len() * len];
    for (i, s) in sequences.iter().enumerate() {
        let n = s.len().min(len);
        ids[i * len..i * len + n].copy_from_slice(&s[..n]);
        mask[i * len..i * len + n].fill(1.0);
    }
    (ids, mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_round_trip_through_tokens() {
        let v = Vocabulary::of("hello, world");
        assert_eq!(v.len(), 9);
        let ids = v.encode("world, hello").unwrap();
        assert_eq!(v.decode(&ids), "world, hello");
        // Sorted: ' ' < ',' < 'd' < ...
        assert_eq!(v.id(' '), Some(0));
        let err = v.encode("help").unwrap_err();
        assert!(err.to_string().contains("'p' at position 3"), "{err}");
    }

    #[test]
    fn the_split_is_the_first_ninety_percent_and_the_rest() {
        let text: String = (0..100).map(|i| char::from(b'a' + (i % 7) as u8)).collect();
        let corpus = Corpus::from_text("t", &text).unwrap();
        let (train, validation) = corpus.split(0.9).unwrap();
        assert_eq!((train.len(), validation.len()), (90, 10));
        assert_eq!(train, &corpus.tokens()[..90]);
        assert!(corpus.split(1.0).is_err());
    }

    #[test]
    fn an_empty_or_short_corpus_is_a_clear_error() {
        let err = Corpus::from_text("empty.txt", "").unwrap_err();
        assert!(
            err.to_string().contains("empty.txt: the file is empty"),
            "{err}"
        );
        let corpus = Corpus::from_text("short", "abcde").unwrap();
        let err = Windows::new(corpus.tokens(), 5, 0).unwrap_err();
        assert!(
            err.to_string().contains("shorter than a window of 5"),
            "{err}"
        );
        assert!(consecutive_windows(corpus.tokens(), 8).is_err());
        assert!(Windows::new(corpus.tokens(), 4, 0).is_ok());
    }

    #[test]
    fn windows_predict_the_next_token_and_cover_the_text() {
        let tokens: Vec<u32> = (0..50).collect();
        let mut windows = Windows::new(&tokens, 8, 3).unwrap();
        let (mut x, mut y) = (vec![0; 8 * 16], vec![0; 8 * 16]);
        windows.fill(&mut x, &mut y).unwrap();
        for (xs, ys) in x.chunks(8).zip(y.chunks(8)) {
            for (a, b) in xs.iter().zip(ys) {
                assert_eq!(a + 1, *b);
            }
            assert!(ys[7] < 50);
        }
        assert!(windows.fill(&mut x[..7], &mut y[..7]).is_err());
        let all: Vec<_> = consecutive_windows(&tokens, 8).unwrap().collect();
        assert_eq!(all.len(), 6);
        assert_eq!(all[5].1[7], 48);
    }

    #[test]
    fn padding_masks_the_tail() {
        let (ids, mask) = pad(&[&[1, 2, 3], &[4], &[5, 6, 7, 8, 9]], 4, 0);
        assert_eq!(ids, [1, 2, 3, 0, 4, 0, 0, 0, 5, 6, 7, 8]);
        assert_eq!(
            mask,
            [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
        );
    }

    #[test]
    fn tiny_shakespeare_has_its_published_size() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/text/tinyshakespeare.txt");
        if !path.exists() {
            println!("skipped: {} is absent", path.display());
            return;
        }
        let corpus = Corpus::read(&path).unwrap();
        assert_eq!(corpus.tokens().len(), 1_115_394);
        assert_eq!(corpus.vocabulary().len(), 65);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            crate::md5_hex(&bytes),
            tiny_shakespeare_remote().checksum.hex()
        );
    }
}
