//! The kernel and bias that `Dense` and `Conv2d` share: storage, gradients, and the
//! visits that optimizers and checkpoints use.

use kiln_kernels::rng::Rng;
use kiln_kernels::{Backend, ParamMut, ParamRef, ViewParams, VisitParams};
use kiln_shape::Shape;

use crate::Result;
use crate::init::glorot_uniform;

/// A glorot-uniform kernel and a zero bias, with their gradients.
#[derive(Debug)]
pub(crate) struct KernelAndBias<B: Backend> {
    /// The layer's kind, for the visits.
    pub(crate) kind: &'static str,
    kernel_shape: Shape,
    pub(crate) weight: B::Buffer,
    pub(crate) bias: B::Buffer,
    pub(crate) dweight: B::Buffer,
    pub(crate) dbias: B::Buffer,
}

impl<B: Backend> KernelAndBias<B> {
    /// A kernel of `kernel_shape` whose last axis is the output units, initialised
    /// with the given fans, and a bias of one value per unit.
    pub(crate) fn new(
        backend: &B,
        kind: &'static str,
        kernel_shape: Shape,
        fan_in: usize,
        fan_out: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        let (len, units) = (kernel_shape.size(), Self::units_of(&kernel_shape));
        Ok(Self {
            kind,
            kernel_shape,
            weight: glorot_uniform(backend, len, fan_in, fan_out, rng)?,
            bias: backend.alloc(units)?,
            dweight: backend.alloc(len)?,
            dbias: backend.alloc(units)?,
        })
    }

    /// The layer's kind.
    pub(crate) fn kind(&self) -> &'static str {
        self.kind
    }

    fn units_of(shape: &Shape) -> usize {
        shape.dims().last().copied().unwrap_or(1)
    }

    fn bias_shape(&self) -> Shape {
        Shape::new(&[Self::units_of(&self.kernel_shape)])
    }

    pub(crate) fn visit<'a>(
        &'a mut self,
        layer: &'static str,
        f: VisitParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let bias_shape = self.bias_shape();
        f(ParamMut {
            layer,
            kind: self.kind,
            name: "weight",
            shape: self.kernel_shape,
            value: &mut self.weight,
            grad: &mut self.dweight,
        })?;
        f(ParamMut {
            layer,
            kind: self.kind,
            name: "bias",
            shape: bias_shape,
            value: &mut self.bias,
            grad: &mut self.dbias,
        })
    }

    pub(crate) fn view<'a>(
        &'a self,
        layer: &'static str,
        f: ViewParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        f(ParamRef {
            layer,
            kind: self.kind,
            name: "weight",
            shape: self.kernel_shape,
            value: &self.weight,
            grad: &self.dweight,
        })?;
        f(ParamRef {
            layer,
            kind: self.kind,
            name: "bias",
            shape: self.bias_shape(),
            value: &self.bias,
            grad: &self.dbias,
        })
    }
}
