//! Errors found by kernels, kept on the device until the host asks.
//!
//! A kernel that finds a non-finite loss input, an invalid label or a non-finite value
//! it was asked to check reports it into one of a few status words in device memory
//! (`kiln_report` in `prelude.cuh`), and the launch returns at once: the host never
//! waits for the GPU inside a training step. While any word is set, the optimizer
//! kernels skip their update, so a step that went wrong changes no weight. The
//! host reads the words in [`Storage::check_errors`](crate::Storage::check_errors),
//! where a training step waits anyway (for its loss), turns the first report into the
//! error the CPU backend returns from the launch itself, and clears them.

use std::sync::{MutexGuard, PoisonError};

use cudarc::driver::CudaSlice;

use super::Cuda;
use super::launch::driver_err;
use crate::{Error, Result};

/// A status word (`StatusWord` in prelude.cuh, same numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusWord {
    /// A loss's input holds a non-finite value.
    NonFiniteOutput = 0,
    /// A loss's or a metric's target is not a valid class.
    InvalidTarget = 1,
    /// A buffer asked to be checked holds a non-finite value.
    NonFinite = 2,
}

/// The number of status words.
pub(crate) const STATUS_WORDS: usize = 3;

/// Who launched the kernel that may report into a word: what the error names.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    pub(crate) op: &'static str,
    pub(crate) operand: &'static str,
    /// Classes, for an invalid target (the vocabulary, for a token id).
    pub(crate) classes: usize,
    /// Ids a sequence, for a token id (its index becomes a batch row and a
    /// position); 0 for a class label.
    pub(crate) steps: usize,
}

/// The status words and, for each, the first launch since the last check that could
/// have reported into it.
pub(crate) struct Reports {
    words: CudaSlice<u64>,
    origins: [Option<Origin>; STATUS_WORDS],
}

impl Reports {
    pub(crate) fn new(words: CudaSlice<u64>) -> Self {
        Self {
            words,
            origins: [None; STATUS_WORDS],
        }
    }
}

/// The element and value a word reports, if any: the word holds the complement of
/// `(index << 32) | value bits`, largest for the smallest index.
pub(crate) fn decode(word: u64) -> Option<(usize, f32)> {
    (word != 0).then(|| {
        let key = !word;
        ((key >> 32) as usize, f32::from_bits(key as u32))
    })
}

impl Cuda {
    fn reports(&self) -> MutexGuard<'_, Reports> {
        self.inner()
            .reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `launch` with the status words, after noting `origins` as the launch that
    /// may report into each word given (unless an earlier one since the last check
    /// already did).
    pub(crate) fn with_reports<T>(
        &self,
        origins: &[(StatusWord, Origin)],
        launch: impl FnOnce(&mut CudaSlice<u64>) -> Result<T>,
    ) -> Result<T> {
        let mut reports = self.reports();
        for &(word, origin) in origins {
            reports.origins[word as usize].get_or_insert(origin);
        }
        launch(&mut reports.words)
    }

    /// Waits for the GPU, reads the status words, clears them, and returns the first
    /// report (a non-finite loss input before an invalid target before a non-finite
    /// checked value) as an error.
    pub(crate) fn take_reports(&self) -> Result<()> {
        let mut reports = self.reports();
        let mut host = [0u64; STATUS_WORDS];
        self.stream()
            .memcpy_dtoh(&reports.words, &mut host)
            .map_err(|e| driver_err("check_errors", e))?;
        self.synchronize()?;
        let origins = std::mem::take(&mut reports.origins);
        if host.iter().all(|&w| w == 0) {
            return Ok(());
        }
        self.stream()
            .memset_zeros(&mut reports.words)
            .map_err(|e| driver_err("check_errors", e))?;
        let origin = |word: StatusWord| {
            origins[word as usize].unwrap_or(Origin {
                op: "kernel",
                operand: "input",
                classes: 0,
                steps: 0,
            })
        };
        if let Some((index, value)) = decode(host[StatusWord::NonFiniteOutput as usize]) {
            let o = origin(StatusWord::NonFiniteOutput);
            return Err(Error::NonFinite {
                op: o.op,
                operand: o.operand,
                index,
                value,
            });
        }
        if let Some((index, value)) = decode(host[StatusWord::InvalidTarget as usize]) {
            let o = origin(StatusWord::InvalidTarget);
            if let Some(row) = index.checked_div(o.steps) {
                return Err(Error::InvalidToken {
                    op: o.op,
                    row,
                    position: index % o.steps,
                    value,
                    vocabulary: o.classes,
                });
            }
            return Err(Error::InvalidTarget {
                op: o.op,
                index,
                value,
                classes: o.classes,
            });
        }
        let (index, value) = decode(host[StatusWord::NonFinite as usize]).unwrap_or((0, f32::NAN));
        let o = origin(StatusWord::NonFinite);
        Err(Error::NonFinite {
            op: o.op,
            operand: o.operand,
            index,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    /// The encoding of `kiln_report`, as the kernel computes it.
    fn report(index: u64, value: f32) -> u64 {
        !((index << 32) | u64::from(value.to_bits()))
    }

    #[test]
    fn a_word_keeps_the_first_element_and_its_value() {
        assert_eq!(decode(0), None);
        let first = report(3, f32::INFINITY);
        let later = report(70_000, -1.5);
        // atomicMax keeps the larger word: the smaller index.
        assert_eq!(decode(first.max(later)), Some((3, f32::INFINITY)));
        let (index, value) = decode(report(u64::from(u32::MAX - 1), f32::NAN)).unwrap();
        assert_eq!(index, (u32::MAX - 1) as usize);
        assert!(value.is_nan());
        assert_eq!(decode(report(0, 0.0)), Some((0, 0.0)));
    }
}
