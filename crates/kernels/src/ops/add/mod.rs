//! The element-wise sum of two tensors with an activation applied in the same pass:
//! the join of a residual block, `y = act(x + branch(x))`, and (with a linear
//! activation) the sum of two gradient contributions, `g += h`.
//!
//! # Backward
//!
//! The sum needs no kernel of its own backward: the output gradient passes unchanged
//! to both inputs. The activation's backward is
//! [`activation_bwd`](crate::ops::activation::ActivationKernel::activation_bwd) from
//! the output, which is why only the activations that
//! [fuse into an epilogue](ActivationKind::fuses_into_epilogue) (their derivative
//! comes from the output) are accepted.

pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use kiln_shape::Activation;

use super::activation::ActivationKind;
use super::u32_of;
use crate::storage::Storage;
use crate::{Error, Result};

/// One sum over `len` elements and the activation applied after it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AddParams {
    /// Elements.
    pub len: u32,
    /// Applied after the sum; only kinds that
    /// [fuse into an epilogue](ActivationKind::fuses_into_epilogue).
    pub activation: ActivationKind,
    /// Slope below zero for [`ActivationKind::LeakyRelu`].
    pub negative_slope: f32,
}

impl AddParams {
    /// `activation` after a sum of `len` elements. GELU and softmax, which cannot run
    /// as an epilogue, are an [`Error::InvalidParams`].
    pub fn new(activation: Activation, len: usize) -> Result<Self> {
        let (activation, negative_slope) = ActivationKind::of(activation);
        let p = Self {
            len: u32_of("add", "len", len)?,
            activation,
            negative_slope,
        };
        p.check("add")?;
        Ok(p)
    }

    /// Refuses an activation that does not fuse into the sum.
    pub(crate) fn check(&self, op: &'static str) -> Result<()> {
        if self.activation.fuses_into_epilogue() {
            return Ok(());
        }
        Err(Error::InvalidParams {
            op,
            detail: format!(
                "{:?} cannot be applied in the same pass as a sum (its backward needs more \
                 than the output); add with a linear activation and apply it as an op of \
                 its own",
                self.activation
            ),
        })
    }
}

/// The sum op.
///
/// ```
/// use kiln_kernels::ops::add::{AddKernel, AddParams};
/// use kiln_kernels::{Cpu, Storage};
/// use kiln_shape::Activation;
///
/// let cpu = Cpu::with_threads(1)?;
/// let x = cpu.alloc_from(&[1.0, -2.0, 3.0])?;
/// let branch = cpu.alloc_from(&[0.5, 1.0, -4.0])?;
/// let mut y = cpu.alloc(3)?;
/// cpu.add_fwd(&AddParams::new(Activation::Relu, 3)?, &x, &branch, &mut y)?;
/// assert_eq!(cpu.to_host(&y, 3)?, [1.5, 0.0, 0.0]);
/// # Ok::<(), kiln_kernels::Error>(())
/// ```
pub trait AddKernel: Storage {
    /// `y = act(a + b)` on the first `p.len` elements.
    fn add_fwd(
        &self,
        p: &AddParams,
        a: &Self::Buffer,
        b: &Self::Buffer,
        y: &mut Self::Buffer,
    ) -> Result<()>;

    /// `y = act(a + y)` on the first `p.len` elements, in place.
    fn add_fwd_inplace(&self, p: &AddParams, a: &Self::Buffer, y: &mut Self::Buffer) -> Result<()>;
}

#[cfg(test)]
mod tests;
