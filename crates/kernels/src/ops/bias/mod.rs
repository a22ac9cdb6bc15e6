//! Per-column bias: added in the forward pass, summed over rows in the backward pass.

pub(crate) mod cpu;

use crate::Result;
use crate::backend::Storage;

/// A `rows x cols` row-major matrix and a bias of `cols` values.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BiasParams {
    /// Rows (samples, or output pixels of a convolution).
    pub rows: u32,
    /// Columns (features or channels).
    pub cols: u32,
}

/// The bias op.
pub trait BiasKernel: Storage {
    /// `y[r, c] += bias[c]`.
    fn bias_add(&self, p: &BiasParams, bias: &Self::Buffer, y: &mut Self::Buffer) -> Result<()>;

    /// `dbias[c] += sum_r dy[r, c]`.
    fn bias_grad(&self, p: &BiasParams, dy: &Self::Buffer, dbias: &mut Self::Buffer) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;

    fn check<B: BiasKernel>(backend: &B) {
        let p = BiasParams { rows: 3, cols: 2 };
        let bias = backend.alloc_from(&[10.0, 20.0]).unwrap();
        let mut y = backend.alloc_from(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        backend.bias_add(&p, &bias, &mut y).unwrap();
        assert_eq!(
            backend.to_host(&y, 6).unwrap(),
            [11.0, 22.0, 13.0, 24.0, 15.0, 26.0]
        );
        let mut db = backend.alloc_from(&[1.0, 1.0]).unwrap();
        backend.bias_grad(&p, &y, &mut db).unwrap();
        assert_eq!(backend.to_host(&db, 2).unwrap(), [40.0, 73.0]);
    }

    #[test]
    fn adds_and_sums_on_cpu() {
        check(&Cpu::with_threads(2).unwrap());
    }
}
