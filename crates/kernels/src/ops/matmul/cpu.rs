//! The matrix product on the CPU, through the packed SGEMM.

use super::{MatmulKernel, MatmulParams};
use crate::cpu::gemm::{MatMut, MatRef, sgemm};
use crate::error::check_len;
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Result};

impl MatmulKernel for Cpu {
    fn matmul(
        &self,
        p: &MatmulParams,
        a: &CpuBuffer,
        b: &CpuBuffer,
        c: &mut CpuBuffer,
    ) -> Result<()> {
        let (m, n, k) = (us(p.m), us(p.n), us(p.k));
        check_len("matmul", "a", m * k, a.as_slice().len())?;
        check_len("matmul", "b", k * n, b.as_slice().len())?;
        check_len("matmul", "c", m * n, c.as_slice().len())?;
        let a = if p.trans_a {
            MatRef::row_major(a.as_slice(), k, m).t()
        } else {
            MatRef::row_major(a.as_slice(), m, k)
        };
        let b = if p.trans_b {
            MatRef::row_major(b.as_slice(), n, k).t()
        } else {
            MatRef::row_major(b.as_slice(), k, n)
        };
        let beta = if p.accumulate { 1.0 } else { 0.0 };
        sgemm(
            self.inner(),
            1.0,
            a,
            b,
            beta,
            MatMut::row_major(c.as_mut_slice(), m, n),
        );
        Ok(())
    }
}
