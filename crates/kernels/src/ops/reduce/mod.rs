//! Reductions of a whole buffer: to one number on the host (what gradient clipping by
//! norm needs), and to a verdict on whether every value is finite (the non-finite
//! checks of training).

mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use crate::Result;
use crate::backend::Storage;

/// The reduction op.
pub trait ReduceKernel: Storage {
    /// `sum(x[i]^2)` over the first `len` elements, accumulated in `f64`. NaN or an
    /// infinity anywhere makes the result non-finite, so one call also checks that a
    /// gradient is finite.
    fn sum_squares(&self, x: &Self::Buffer, len: usize) -> Result<f64>;

    /// Fails with [`Error::NonFinite`](crate::Error::NonFinite) (op `check_finite`,
    /// the first such element and its value) if one of the first `len` elements is NaN
    /// or infinite. Where ops run asynchronously (CUDA) the failure is reported by
    /// [`Storage::check_errors`] instead, and optimizer updates skip until then, so a
    /// training step checks its gradients without waiting for the GPU.
    fn check_finite(&self, x: &Self::Buffer, len: usize) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;

    fn check<B: ReduceKernel>(backend: &B) {
        let n = 100_003;
        let x: Vec<f32> = (0..n).map(|i| ((i % 17) as f32 - 8.0) * 0.25).collect();
        let want: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let mut buf = backend.alloc_from(&x).unwrap();
        let got = backend.sum_squares(&buf, n).unwrap();
        assert!((got - want).abs() <= 1e-9 * want, "{got} vs {want}");
        assert_eq!(
            backend.sum_squares(&buf, 3).unwrap(),
            64.0 * 0.0625 + 49.0 * 0.0625 + 36.0 * 0.0625
        );
        assert_eq!(backend.sum_squares(&buf, 0).unwrap(), 0.0);
        let mut bad = x.clone();
        bad[77_777] = f32::NAN;
        backend.upload(&bad, &mut buf).unwrap();
        assert!(backend.sum_squares(&buf, n).unwrap().is_nan());
        bad[77_777] = f32::INFINITY;
        backend.upload(&bad, &mut buf).unwrap();
        assert!(backend.sum_squares(&buf, n).unwrap().is_infinite());
        assert!(backend.sum_squares(&buf, n + 1).is_err());
    }

    /// `check_finite` on `x`, its error whenever the backend reports it.
    fn finite_check<B: ReduceKernel>(backend: &B, x: &B::Buffer, len: usize) -> Result<()> {
        backend.check_finite(x, len).and(backend.check_errors())
    }

    fn check_finite<B: ReduceKernel>(backend: &B) {
        let n = 70_001;
        let mut x: Vec<f32> = (0..n).map(|i| (i % 13) as f32 - 6.0).collect();
        let mut buf = backend.alloc_from(&x).unwrap();
        finite_check(backend, &buf, n).unwrap();
        finite_check(backend, &buf, 0).unwrap();
        x[69_999] = f32::INFINITY;
        x[41] = f32::NEG_INFINITY;
        x[50_000] = f32::NAN;
        backend.upload(&x, &mut buf).unwrap();
        match finite_check(backend, &buf, n).unwrap_err() {
            crate::Error::NonFinite {
                op, index, value, ..
            } => {
                assert_eq!((op, index, value), ("check_finite", 41, f32::NEG_INFINITY));
            }
            other => panic!("{other}"),
        }
        // Only the first `len` values count, and a report does not outlive its check.
        finite_check(backend, &buf, 41).unwrap();
        assert!(backend.check_finite(&buf, n + 1).is_err());
    }

    #[test]
    fn sums_squares_and_sees_non_finite_values_on_cpu() {
        check(&Cpu::with_threads(2).unwrap());
        check_finite(&Cpu::with_threads(2).unwrap());
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn sums_squares_and_sees_non_finite_values_on_cuda() {
        if let Some(gpu) = crate::cuda::test_device() {
            check(&gpu);
            check_finite(&gpu);
        }
    }

    /// The GPU against the CPU, from one value to more than the grid covers at once.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_matches_cpu() {
        let Some(gpu) = crate::cuda::test_device() else {
            return;
        };
        let cpu = Cpu::with_threads(2).unwrap();
        for n in [1, 255, 257, 70_000, 2_000_003] {
            let x = crate::cuda::parity::random(n, n as u64, 10.0);
            let want = cpu.sum_squares(&cpu.alloc_from(&x).unwrap(), n).unwrap();
            let got = gpu.sum_squares(&gpu.alloc_from(&x).unwrap(), n).unwrap();
            assert!((got - want).abs() <= 1e-12 * want, "{n}: {got} vs {want}");
        }
    }
}
