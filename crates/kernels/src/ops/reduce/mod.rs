//! Reductions of a whole buffer: to one number on the host (what gradient clipping by
//! norm needs), and to a verdict on whether every value is finite (the non-finite
//! checks of training).

mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use crate::Result;
use crate::storage::Storage;

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

    /// [`ReduceKernel::check_finite`] on the first `len` elements of each buffer, as
    /// if they were one after another (the error's index counts from the first
    /// buffer's start). A GPU checks up to sixteen buffers in one launch; the CPU one
    /// after another.
    fn check_finite_many<'a>(
        &self,
        xs: impl IntoIterator<Item = (&'a Self::Buffer, usize)>,
    ) -> Result<()>
    where
        Self: 'a,
    {
        let mut offset = 0;
        for (x, len) in xs {
            self.check_finite(x, len).map_err(|e| match e {
                crate::Error::NonFinite {
                    op,
                    operand,
                    index,
                    value,
                } => crate::Error::NonFinite {
                    op,
                    operand,
                    index: offset + index,
                    value,
                },
                other => other,
            })?;
            offset += len;
        }
        Ok(())
    }
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

    /// Many buffers at once: the first non-finite value, counted across them.
    fn check_finite_many<B: ReduceKernel>(backend: &B) {
        let lens = [
            5, 0, 3000, 17, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        ];
        let mut host: Vec<Vec<f32>> = lens.iter().map(|&n| vec![0.5; n]).collect();
        let bufs = |host: &[Vec<f32>]| -> Vec<B::Buffer> {
            host.iter()
                .map(|v| backend.alloc_from(v).unwrap())
                .collect()
        };
        let check = |bufs: &[B::Buffer]| {
            backend
                .check_finite_many(bufs.iter().zip(lens))
                .and(backend.check_errors())
        };
        check(&bufs(&host)).unwrap();
        // In the eighteenth buffer (past a GPU's first group of sixteen), then also
        // in the third: the third's comes first.
        host[17][3] = f32::NAN;
        let late: usize = lens[..17].iter().sum::<usize>() + 3;
        match check(&bufs(&host)).unwrap_err() {
            crate::Error::NonFinite { index, .. } => assert_eq!(index, late),
            other => panic!("{other}"),
        }
        host[2][2999] = f32::INFINITY;
        match check(&bufs(&host)).unwrap_err() {
            crate::Error::NonFinite { index, value, .. } => {
                assert_eq!((index, value), (5 + 2999, f32::INFINITY));
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn sums_squares_and_sees_non_finite_values_on_cpu() {
        check(&Cpu::with_threads(2).unwrap());
        check_finite(&Cpu::with_threads(2).unwrap());
        check_finite_many(&Cpu::with_threads(2).unwrap());
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn sums_squares_and_sees_non_finite_values_on_cuda() {
        if let Some(gpu) = crate::cuda::test_device() {
            check(&gpu);
            check_finite(&gpu);
            check_finite_many(&gpu);
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
