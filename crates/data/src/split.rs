//! Splits: training / validation / test by fraction, and k-fold cross-validation,
//! both seeded and optionally stratified (every part keeps the class proportions).
//!
//! Splits are lists of sample indices (ascending); take the samples with
//! [`InMemory::select`] (a copy) or [`Subset`](crate::Subset) (a view).

use crate::dataset::{Dataset, InMemory, Target};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Sample indices of a training, a validation and a test part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// The training samples.
    pub train: Vec<usize>,
    /// The validation samples.
    pub validation: Vec<usize>,
    /// The test samples.
    pub test: Vec<usize>,
}

/// One fold of k-fold cross-validation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fold {
    /// The samples to train on (every other fold).
    pub train: Vec<usize>,
    /// The samples to validate on (this fold).
    pub validation: Vec<usize>,
}

impl Split {
    /// The three parts of `data` (copied).
    pub fn apply(&self, data: &InMemory) -> Result<(InMemory, InMemory, InMemory)> {
        Ok((
            data.select(&self.train)?,
            data.select(&self.validation)?,
            data.select(&self.test)?,
        ))
    }
}

/// A random split of `n` samples: `round(n * validation)` for validation,
/// `round(n * test)` for test, the rest for training.
pub fn split(n: usize, validation: f64, test: f64, seed: u64) -> Result<Split> {
    let order = shuffled(n, seed);
    cut(order, validation, test)
}

/// Like [`split`], but each part holds each class in (within one sample) the
/// proportion of the whole.
pub fn split_stratified(labels: &[u32], validation: f64, test: f64, seed: u64) -> Result<Split> {
    cut(stratified_order(labels, seed), validation, test)
}

/// [`split`] or [`split_stratified`] of a data set (stratifying needs class targets).
pub fn split_dataset(
    data: &impl Dataset,
    validation: f64,
    test: f64,
    seed: u64,
    stratify: bool,
) -> Result<Split> {
    if stratify {
        split_stratified(&labels_of(data)?, validation, test, seed)
    } else {
        split(data.len(), validation, test, seed)
    }
}

/// `k` folds of `n` samples in random order; fold sizes differ by at most one.
pub fn k_fold(n: usize, k: usize, seed: u64) -> Result<Vec<Fold>> {
    folds(shuffled(n, seed), k)
}

/// `k` folds that each keep the class proportions.
pub fn k_fold_stratified(labels: &[u32], k: usize, seed: u64) -> Result<Vec<Fold>> {
    // Dealing the samples class after class (each class shuffled) round the folds
    // gives every fold each class's count over k, rounded up or down, and fold
    // sizes within one of each other.
    folds(
        class_members(labels, &mut Rng::stream(seed, 0xf01d)).concat(),
        k,
    )
}

/// The labels of a data set with class targets.
pub fn labels_of(data: &impl Dataset) -> Result<Vec<u32>> {
    (0..data.len())
        .map(|i| match data.get(i)?.target {
            Target::Class(c) => Ok(c),
            Target::Real(_) => Err(Error::Config(
                "stratifying needs class labels, not real-valued targets".into(),
            )),
        })
        .collect()
}

fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::stream(seed, 0x5_9117).shuffle(&mut order);
    order
}

/// An order in which every prefix holds each class in nearly its overall proportion:
/// each class is shuffled, its `r`-th sample gets the key `(r + 0.5) / count`, and
/// samples are sorted by key (ties in a seeded random order).
fn stratified_order(labels: &[u32], seed: u64) -> Vec<usize> {
    let mut rng = Rng::stream(seed, 0x57_2a7);
    let members = class_members(labels, &mut rng);
    let mut keyed: Vec<(f64, u64, usize)> = Vec::with_capacity(labels.len());
    for m in &members {
        let count = m.len() as f64;
        for (r, &i) in m.iter().enumerate() {
            keyed.push(((r as f64 + 0.5) / count, rng.next_u64(), i));
        }
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, i)| i).collect()
}

/// The samples of each class, each list shuffled.
fn class_members(labels: &[u32], rng: &mut Rng) -> Vec<Vec<usize>> {
    let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        members[l as usize].push(i);
    }
    for m in &mut members {
        rng.shuffle(m);
    }
    members
}

fn check_fraction(name: &str, f: f64) -> Result<()> {
    if (0.0..=1.0).contains(&f) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "the {name} fraction {f} is not in [0, 1]"
        )))
    }
}

fn cut(order: Vec<usize>, validation: f64, test: f64) -> Result<Split> {
    check_fraction("validation", validation)?;
    check_fraction("test", test)?;
    if validation + test > 1.0 {
        return Err(Error::Config(format!(
            "validation ({validation}) and test ({test}) fractions add up to more than 1"
        )));
    }
    let n = order.len();
    let n_test = ((n as f64 * test).round() as usize).min(n);
    let n_val = ((n as f64 * validation).round() as usize).min(n - n_test);
    let mut test_part = order[..n_test].to_vec();
    let mut val_part = order[n_test..n_test + n_val].to_vec();
    let mut train_part = order[n_test + n_val..].to_vec();
    test_part.sort_unstable();
    val_part.sort_unstable();
    train_part.sort_unstable();
    Ok(Split {
        train: train_part,
        validation: val_part,
        test: test_part,
    })
}

fn folds(order: Vec<usize>, k: usize) -> Result<Vec<Fold>> {
    if k < 2 || k > order.len() {
        return Err(Error::Config(format!(
            "k-fold needs 2 <= k <= {} samples, got k = {k}",
            order.len()
        )));
    }
    let mut fold_of = vec![0usize; order.len()];
    for (pos, &i) in order.iter().enumerate() {
        fold_of[i] = pos % k;
    }
    Ok((0..k)
        .map(|f| {
            let (validation, train) = (0..order.len()).partition(|&i| fold_of[i] == f);
            Fold { train, validation }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(labels: &[u32], idx: &[usize]) -> Vec<usize> {
        let mut c = vec![0; 3];
        for &i in idx {
            c[labels[i] as usize] += 1;
        }
        c
    }

    #[test]
    fn split_sizes_are_exact_and_parts_disjoint() {
        let s = split(103, 0.2, 0.1, 5).unwrap();
        assert_eq!(
            (s.train.len(), s.validation.len(), s.test.len()),
            (72, 21, 10)
        );
        let mut all: Vec<usize> = s
            .train
            .iter()
            .chain(&s.validation)
            .chain(&s.test)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        assert_eq!(s, split(103, 0.2, 0.1, 5).unwrap());
        assert_ne!(s, split(103, 0.2, 0.1, 6).unwrap());
        assert!(split(10, 0.6, 0.6, 0).is_err());
        assert!(split(10, -0.1, 0.0, 0).is_err());
    }

    #[test]
    fn stratified_parts_keep_proportions() {
        // 60 / 30 / 10 samples of classes 0, 1, 2, interleaved.
        let labels: Vec<u32> = (0..100)
            .map(|i| {
                if i % 10 < 6 {
                    0
                } else if i % 10 < 9 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let s = split_stratified(&labels, 0.2, 0.3, 1).unwrap();
        assert_eq!(counts(&labels, &s.test), vec![18, 9, 3]);
        assert_eq!(counts(&labels, &s.validation), vec![12, 6, 2]);
        assert_eq!(counts(&labels, &s.train), vec![30, 15, 5]);
    }

    #[test]
    fn folds_cover_every_sample_once() {
        let labels: Vec<u32> = (0..30).map(|i| (i % 3) as u32).collect();
        for folds in [
            k_fold(30, 4, 2).unwrap(),
            k_fold_stratified(&labels, 3, 2).unwrap(),
        ] {
            let mut seen = [0; 30];
            for f in &folds {
                assert_eq!(f.train.len() + f.validation.len(), 30);
                for &i in &f.validation {
                    seen[i] += 1;
                    assert!(!f.train.contains(&i));
                }
            }
            assert!(seen.iter().all(|&c| c == 1));
        }
        let strat = k_fold_stratified(&labels, 3, 2).unwrap();
        for f in &strat {
            let c = counts(&labels, &f.validation);
            assert!(c.iter().all(|&n| n == 3 || n == 4), "{c:?}");
            assert_eq!(f.validation.len(), 10);
        }
        assert!(k_fold(3, 4, 0).is_err());
        assert!(k_fold(3, 1, 0).is_err());
    }
}
