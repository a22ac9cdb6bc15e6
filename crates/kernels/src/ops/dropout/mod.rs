//! Inverted dropout with a counter-based mask: element `i` is kept when
//! `uniform_at(seed, i) >= rate`, so the backward pass (or another backend) rebuilds
//! the same mask from the seed instead of storing it.

mod cpu;

use crate::Result;
use crate::backend::Storage;

/// One dropout call.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutParams {
    /// Elements.
    pub len: u32,
    /// Fraction dropped, in `[0, 1)`.
    pub rate: f32,
    /// The mask's seed; a new one for every training step.
    pub seed: u64,
}

/// The dropout op.
pub trait DropoutKernel: Storage {
    /// `y = x * mask / (1 - rate)`.
    fn dropout_fwd(&self, p: &DropoutParams, x: &Self::Buffer, y: &mut Self::Buffer) -> Result<()>;

    /// `dx = dy * mask / (1 - rate)`, with the mask of the forward call with the same
    /// parameters.
    fn dropout_bwd(
        &self,
        p: &DropoutParams,
        dy: &Self::Buffer,
        dx: &mut Self::Buffer,
    ) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;

    fn check<B: DropoutKernel>(backend: &B) {
        let len = 20_000;
        let p = DropoutParams {
            len: len as u32,
            rate: 0.3,
            seed: 99,
        };
        let x = backend.alloc_from(&vec![1.0; len]).unwrap();
        let mut y = backend.alloc(len).unwrap();
        backend.dropout_fwd(&p, &x, &mut y).unwrap();
        let y = backend.to_host(&y, len).unwrap();
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f32 / len as f32;
        assert!((kept - 0.7).abs() < 0.02, "kept {kept}");
        assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
        // The mean is preserved in expectation.
        let mean = y.iter().sum::<f32>() / len as f32;
        assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
        // The backward mask is the forward mask.
        let mut dx = backend.alloc(len).unwrap();
        backend.dropout_bwd(&p, &x, &mut dx).unwrap();
        assert_eq!(backend.to_host(&dx, len).unwrap(), y);
        // Another seed, another mask.
        let mut y2 = backend.alloc(len).unwrap();
        backend
            .dropout_fwd(&DropoutParams { seed: 100, ..p }, &x, &mut y2)
            .unwrap();
        assert_ne!(backend.to_host(&y2, len).unwrap(), y);
    }

    #[test]
    fn keeps_the_right_fraction_and_replays_the_mask_on_cpu() {
        check(&Cpu::with_threads(2).unwrap());
    }
}
