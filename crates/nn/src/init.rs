//! Parameter initialisation with Keras's defaults.

use kiln_kernels::Backend;
use kiln_kernels::rng::Rng;

use crate::Result;

/// A buffer of `len` values drawn from Glorot's uniform distribution,
/// `U(-limit, limit)` with `limit = sqrt(6 / (fan_in + fan_out))` (Keras's
/// `glorot_uniform`, the default kernel initialiser of `Dense` and `Conv2D`).
pub fn glorot_uniform<B: Backend>(
    backend: &B,
    len: usize,
    fan_in: usize,
    fan_out: usize,
    rng: &mut Rng,
) -> Result<B::Buffer> {
    let limit = (6.0 / (fan_in + fan_out).max(1) as f32).sqrt();
    // Both allocations are fallible: a size the user chose must become an error, not
    // an abort.
    let mut buffer = backend.alloc(len)?;
    let mut values: Vec<f32> = Vec::new();
    values
        .try_reserve_exact(len)
        .map_err(|_| kiln_kernels::Error::OutOfMemory {
            len,
            backend: "the host".to_string(),
        })?;
    values.extend((0..len).map(|_| rng.uniform_in(-limit, limit)));
    backend.upload(&values, &mut buffer)?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_kernels::{Cpu, Storage};

    #[test]
    fn glorot_uniform_has_the_keras_range_and_variance() {
        let cpu = Cpu::with_threads(1).unwrap();
        let (fan_in, fan_out) = (288, 576);
        let buf = glorot_uniform(&cpu, 100_000, fan_in, fan_out, &mut Rng::new(1)).unwrap();
        let v = cpu.to_host(&buf, 100_000).unwrap();
        let limit = (6.0f32 / 864.0).sqrt();
        assert!(v.iter().all(|x| x.abs() < limit));
        // Var(U(-l, l)) = l^2 / 3 = 2 / (fan_in + fan_out).
        let var = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / v.len() as f64;
        assert!((var - 2.0 / 864.0).abs() < 0.02 * 2.0 / 864.0, "{var}");
    }
}
