//! Activation functions, forward and backward, element-wise (softmax: per row).

pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use kiln_shape::Activation;

use super::u32_of;
use crate::Result;
use crate::storage::Storage;

/// Which function; the numbering is shared with the GPU kernels.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivationKind {
    /// Identity.
    Linear = 0,
    /// `max(x, 0)`.
    Relu = 1,
    /// `x`, or `slope * x` below zero.
    LeakyRelu = 2,
    /// Logistic sigmoid.
    Sigmoid = 3,
    /// Hyperbolic tangent.
    Tanh = 4,
    /// Exact GELU.
    Gelu = 5,
    /// Softmax over each row.
    Softmax = 6,
}

impl ActivationKind {
    /// The kind and slope of `activation`.
    pub fn of(activation: Activation) -> (Self, f32) {
        match activation {
            Activation::Linear => (Self::Linear, 0.0),
            Activation::Relu => (Self::Relu, 0.0),
            Activation::LeakyRelu { negative_slope } => (Self::LeakyRelu, negative_slope),
            Activation::Sigmoid => (Self::Sigmoid, 0.0),
            Activation::Tanh => (Self::Tanh, 0.0),
            Activation::Gelu => (Self::Gelu, 0.0),
            Activation::Softmax => (Self::Softmax, 0.0),
        }
    }

    /// Whether ops can apply it as an epilogue of their own store: an element-wise
    /// function whose backward needs only its output. GELU (which needs its input) and
    /// softmax (a per-row function) are applied as ops of their own.
    pub fn fuses_into_epilogue(self) -> bool {
        matches!(
            self,
            Self::Linear | Self::Relu | Self::LeakyRelu | Self::Sigmoid | Self::Tanh
        )
    }
}

/// An activation over a `rows x cols` matrix (softmax normalises each row).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActivationParams {
    /// Rows.
    pub rows: u32,
    /// Columns (the softmax axis).
    pub cols: u32,
    /// The function.
    pub kind: ActivationKind,
    /// Slope below zero for [`ActivationKind::LeakyRelu`].
    pub negative_slope: f32,
}

impl ActivationParams {
    /// `activation` over `rows` rows of `cols` values.
    pub fn new(activation: Activation, rows: usize, cols: usize) -> Result<Self> {
        let (kind, negative_slope) = ActivationKind::of(activation);
        Ok(Self {
            rows: u32_of("activation", "rows", rows)?,
            cols: u32_of("activation", "cols", cols)?,
            kind,
            negative_slope,
        })
    }

    /// Elements covered.
    pub fn len(&self) -> usize {
        self.rows as usize * self.cols as usize
    }

    /// Whether no element is covered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The activation op.
pub trait ActivationKernel: Storage {
    /// `y = f(x)`.
    fn activation_fwd(
        &self,
        p: &ActivationParams,
        x: &Self::Buffer,
        y: &mut Self::Buffer,
    ) -> Result<()>;

    /// `y = f(y)`, in place.
    fn activation_fwd_inplace(&self, p: &ActivationParams, y: &mut Self::Buffer) -> Result<()>;

    /// `grad = grad * f'(x)`, in place, with `y = f(x)`. Only GELU reads `x`; for every
    /// other function the derivative comes from `y`, and `x` may be the same buffer.
    fn activation_bwd(
        &self,
        p: &ActivationParams,
        x: &Self::Buffer,
        y: &Self::Buffer,
        grad: &mut Self::Buffer,
    ) -> Result<()>;
}

#[cfg(test)]
mod tests;
