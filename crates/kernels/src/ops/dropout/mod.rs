//! Inverted dropout with a counter-based mask: element `i` is kept when
//! `uniform_at(seed, i) >= rate`, so the backward pass (or another backend) rebuilds
//! the same mask from the seed instead of storing it.

mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use crate::Result;
use crate::storage::Storage;

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

    #[cfg(feature = "cuda")]
    #[test]
    fn keeps_the_right_fraction_and_replays_the_mask_on_cuda() {
        if let Some(gpu) = crate::cuda::test_device() {
            check(&gpu);
        }
    }

    /// The GPU's mask is the CPU's, bit for bit, forward and backward.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_matches_cpu_bit_for_bit() {
        use crate::cuda::parity::random;
        let Some(gpu) = crate::cuda::test_device() else {
            return;
        };
        let cpu = Cpu::with_threads(2).unwrap();
        for (len, rate, seed) in [(1, 0.5, 1), (1_000, 0.1, 7), (300_001, 0.5, u64::MAX)] {
            let p = DropoutParams { len, rate, seed };
            let x = random(len as usize, seed ^ 5, 3.0);
            let run = |fwd: bool| {
                let cpu_out = {
                    let xb = cpu.alloc_from(&x).unwrap();
                    let mut y = cpu.alloc(x.len()).unwrap();
                    if fwd {
                        cpu.dropout_fwd(&p, &xb, &mut y).unwrap();
                    } else {
                        cpu.dropout_bwd(&p, &xb, &mut y).unwrap();
                    }
                    cpu.to_host(&y, x.len()).unwrap()
                };
                let gpu_out = {
                    let xb = gpu.alloc_from(&x).unwrap();
                    let mut y = gpu.alloc(x.len()).unwrap();
                    if fwd {
                        gpu.dropout_fwd(&p, &xb, &mut y).unwrap();
                    } else {
                        gpu.dropout_bwd(&p, &xb, &mut y).unwrap();
                    }
                    gpu.to_host(&y, x.len()).unwrap()
                };
                assert_eq!(cpu_out, gpu_out, "len {len}, rate {rate}, forward {fwd}");
            };
            run(true);
            run(false);
        }
    }
}
