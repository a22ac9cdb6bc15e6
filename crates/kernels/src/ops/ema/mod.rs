//! The exponential moving average of tensors: `average = decay * average + (1 - decay)
//! * value`, what an averaged copy of a model's weights (PyTorch's `AveragedModel`
//! with `get_ema_multi_avg_fn`, Keras's `use_ema`) does after each optimizer step.
//!
//! The update is `torch.lerp(average, value, weight)` with `weight = 1 - decay`
//! worked out by the host in `f64` and passed as `f32`, as PyTorch's
//! `_foreach_lerp_` gets it: `average + weight * (value - average)` for weights below
//! one half, `value - (value - average) * (1 - weight)` from one half on.

mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use super::u32_of;
use crate::storage::Storage;
use crate::{Error, Result};

/// One average over `len` values.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmaParams {
    /// Values in the tensor.
    pub len: u32,
    /// How far the average moves towards the value: `1 - decay`.
    pub weight: f32,
}

impl EmaParams {
    /// The average of `len` values with `decay` (the weight the average keeps, in
    /// `[0, 1]`); anything else is an [`Error::InvalidParams`].
    pub fn new(len: usize, decay: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&decay) {
            return Err(Error::InvalidParams {
                op: "ema",
                detail: format!("the decay must lie in [0, 1], got {decay}"),
            });
        }
        Ok(Self {
            len: u32_of("ema", "len", len)?,
            weight: (1.0 - decay) as f32,
        })
    }
}

/// The moving-average op.
///
/// ```
/// use kiln_kernels::ops::ema::{EmaKernel, EmaParams};
/// use kiln_kernels::{Cpu, Storage};
///
/// let cpu = Cpu::with_threads(1)?;
/// let mut average = cpu.alloc_from(&[1.0, 2.0])?;
/// let value = cpu.alloc_from(&[3.0, 2.0])?;
/// cpu.ema_update(&EmaParams::new(2, 0.75)?, &mut average, &value)?;
/// assert_eq!(cpu.to_host(&average, 2)?, [1.5, 2.0]);
/// # Ok::<(), kiln_kernels::Error>(())
/// ```
pub trait EmaKernel: Storage {
    /// `average = lerp(average, value, p.weight)` on the first `p.len` values.
    fn ema_update(
        &self,
        p: &EmaParams,
        average: &mut Self::Buffer,
        value: &Self::Buffer,
    ) -> Result<()>;

    /// The averages of several tensors, each as [`EmaKernel::ema_update`] would make
    /// it. A GPU makes up to eight in one launch, and skips them while a kernel's
    /// error waits on the device (a step that went wrong changes no average, as it
    /// changes no weight); the CPU makes them one after another.
    fn ema_update_many<'a>(&self, steps: impl IntoIterator<Item = EmaStep<'a, Self>>) -> Result<()>
    where
        Self: 'a,
    {
        for s in steps {
            self.ema_update(&s.params, s.average, s.value)?;
        }
        Ok(())
    }
}

/// One tensor's average for [`EmaKernel::ema_update_many`].
#[derive(Debug)]
pub struct EmaStep<'a, B: Storage> {
    /// Its length and weight.
    pub params: EmaParams,
    /// The average, updated in place.
    pub average: &'a mut B::Buffer,
    /// The tensor averaged.
    pub value: &'a B::Buffer,
}

#[cfg(test)]
mod tests;
