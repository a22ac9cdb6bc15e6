//! Per-column bias, with the activation that follows it applied in the same pass:
//! added in the forward pass, summed over rows in the backward pass.

pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use super::activation::ActivationKind;
use crate::Result;
use crate::storage::Storage;

/// A `rows x cols` row-major matrix, a bias of `cols` values, and the activation
/// applied after the bias.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BiasParams {
    /// Rows (samples, or output pixels of a convolution).
    pub rows: u32,
    /// Columns (features or channels).
    pub cols: u32,
    /// Applied after the bias; only kinds that
    /// [fuse into an epilogue](ActivationKind::fuses_into_epilogue).
    pub activation: ActivationKind,
    /// Slope below zero for [`ActivationKind::LeakyRelu`].
    pub negative_slope: f32,
}

impl BiasParams {
    /// A bias over `rows x cols` with no activation.
    pub fn new(rows: u32, cols: u32) -> Self {
        Self {
            rows,
            cols,
            activation: ActivationKind::Linear,
            negative_slope: 0.0,
        }
    }
}

/// The bias op.
pub trait BiasKernel: Storage {
    /// `y[r, c] = act(y[r, c] + bias[c])`. An activation that does not fuse into an
    /// epilogue is an error.
    fn bias_activation(
        &self,
        p: &BiasParams,
        bias: &Self::Buffer,
        y: &mut Self::Buffer,
    ) -> Result<()>;

    /// `dbias[c] += sum_r dy[r, c]`.
    fn bias_grad(&self, p: &BiasParams, dy: &Self::Buffer, dbias: &mut Self::Buffer) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;

    fn check<B: BiasKernel>(backend: &B) {
        let p = BiasParams::new(3, 2);
        let bias = backend.alloc_from(&[10.0, 20.0]).unwrap();
        let mut y = backend.alloc_from(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        backend.bias_activation(&p, &bias, &mut y).unwrap();
        assert_eq!(
            backend.to_host(&y, 6).unwrap(),
            [11.0, 22.0, 13.0, 24.0, 15.0, 26.0]
        );
        let mut db = backend.alloc_from(&[1.0, 1.0]).unwrap();
        backend.bias_grad(&p, &y, &mut db).unwrap();
        assert_eq!(backend.to_host(&db, 2).unwrap(), [40.0, 73.0]);
    }

    fn check_fused_activation<B: BiasKernel>(backend: &B) {
        let bias = backend.alloc_from(&[1.0, -1.0]).unwrap();
        let relu = BiasParams {
            activation: ActivationKind::Relu,
            ..BiasParams::new(2, 2)
        };
        let mut y = backend.alloc_from(&[-2.0, 0.5, 3.0, f32::NAN]).unwrap();
        backend.bias_activation(&relu, &bias, &mut y).unwrap();
        let y = backend.to_host(&y, 4).unwrap();
        assert_eq!(&y[..3], [0.0, 0.0, 4.0]);
        assert!(y[3].is_nan(), "NaN propagates through ReLU");
        let softmax = BiasParams {
            activation: ActivationKind::Softmax,
            ..BiasParams::new(2, 2)
        };
        let mut y = backend.alloc(4).unwrap();
        let err = backend
            .bias_activation(&softmax, &bias, &mut y)
            .unwrap_err();
        assert!(err.to_string().contains("Softmax"), "{err}");
    }

    #[test]
    fn fuses_the_activation_on_cpu() {
        check_fused_activation(&Cpu::with_threads(2).unwrap());
    }

    #[test]
    fn large_gradients_are_summed_exactly_and_reproducibly_on_cpu() {
        let cpu = Cpu::with_threads(2).unwrap();
        let (rows, cols) = (5_000u32, 37u32);
        let n = (rows * cols) as usize;
        let dy: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 97.0)
            .collect();
        let dyb = cpu.alloc_from(&dy).unwrap();
        let p = BiasParams::new(rows, cols);
        let run = || {
            let mut db = cpu.alloc(cols as usize).unwrap();
            cpu.bias_grad(&p, &dyb, &mut db).unwrap();
            cpu.to_host(&db, cols as usize).unwrap()
        };
        let db = run();
        for (c, got) in db.iter().enumerate() {
            let want: f64 = dy
                .iter()
                .skip(c)
                .step_by(cols as usize)
                .map(|v| f64::from(*v))
                .sum();
            assert!(
                (f64::from(*got) - want).abs() < 1e-3 * (1.0 + want.abs()),
                "column {c}: {got} vs {want}"
            );
        }
        for _ in 0..5 {
            assert_eq!(run(), db, "the same inputs must give the same bits");
        }
    }

    #[test]
    fn adds_and_sums_on_cpu() {
        check(&Cpu::with_threads(2).unwrap());
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn adds_sums_and_fuses_on_cuda() {
        if let Some(gpu) = crate::cuda::test_device() {
            check(&gpu);
            check_fused_activation(&gpu);
        }
    }

    /// The GPU against the CPU on shapes from one row to many, every fusable
    /// activation, both directions.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_matches_cpu() {
        use crate::cuda::parity::{assert_close, random};
        let Some(gpu) = crate::cuda::test_device() else {
            return;
        };
        let cpu = Cpu::with_threads(2).unwrap();
        let kinds = [
            ActivationKind::Linear,
            ActivationKind::Relu,
            ActivationKind::LeakyRelu,
            ActivationKind::Sigmoid,
            ActivationKind::Tanh,
        ];
        for (rows, cols) in [(1, 1), (5, 33), (64, 128), (5_000, 37), (3, 1_000)] {
            let n = (rows * cols) as usize;
            let (y, bias) = (random(n, 3, 2.0), random(cols as usize, 4, 1.0));
            for activation in kinds {
                let p = BiasParams {
                    activation,
                    negative_slope: 0.1,
                    ..BiasParams::new(rows, cols)
                };
                let (yc, dc) = forward_backward(&cpu, &p, &y, &bias);
                let (yg, dg) = forward_backward(&gpu, &p, &y, &bias);
                let what = format!("{activation:?} {rows}x{cols}");
                assert_close(&format!("{what} forward"), &yc, &yg, 1e-6, 1e-6);
                assert_close(&format!("{what} bias_grad"), &dc, &dg, 1e-4, 1e-3);
            }
        }
    }

    /// `(act(y + bias), 1 + column sums of y)` on `backend`.
    #[cfg(feature = "cuda")]
    fn forward_backward<B: BiasKernel>(
        backend: &B,
        p: &BiasParams,
        y: &[f32],
        bias: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let b = backend.alloc_from(bias).unwrap();
        let mut yb = backend.alloc_from(y).unwrap();
        let dy = backend.alloc_from(y).unwrap();
        backend.bias_activation(p, &b, &mut yb).unwrap();
        let mut db = backend.alloc_from(&vec![1.0; bias.len()]).unwrap();
        backend.bias_grad(p, &dy, &mut db).unwrap();
        (
            backend.to_host(&yb, y.len()).unwrap(),
            backend.to_host(&db, bias.len()).unwrap(),
        )
    }
}
