//! Activations: as a layer of their own (`act: Relu`) and fused at the end of
//! `Dense` and `Conv2d` (`Dense(10, softmax)`).

use kiln_kernels::ops::activation::{ActivationKind, ActivationParams};
use kiln_kernels::rng::Rng;
use kiln_kernels::{Backend, GradAt};
use kiln_shape::{Activation, Shape};

use crate::layer::checked_output;
use crate::{Backward, Error, Layer, Mode, Result};

/// An activation applied at a layer's output. Element-wise activations whose
/// backward needs only their output run as the epilogue of the layer's last op (its
/// bias pass); the others (GELU, which keeps its input here, and softmax) run as an
/// op of their own.
#[derive(Debug)]
pub(crate) struct FusedActivation<B: Backend> {
    activation: Option<Activation>,
    in_epilogue: bool,
    pre: Option<B::Buffer>,
}

impl<B: Backend> FusedActivation<B> {
    pub(crate) fn new(backend: &B, activation: Activation, max_len: usize) -> Result<Self> {
        let activation = (activation != Activation::Linear).then_some(activation);
        let pre = match activation {
            Some(a) if a.backward_needs_input() => Some(backend.alloc(max_len)?),
            _ => None,
        };
        let in_epilogue = activation.is_none_or(|a| ActivationKind::of(a).0.fuses_into_epilogue());
        Ok(Self {
            activation,
            in_epilogue,
            pre,
        })
    }

    /// What the layer's bias pass applies: the activation when it fuses, else nothing.
    pub(crate) fn epilogue(&self) -> (ActivationKind, f32) {
        match self.activation {
            Some(a) if self.in_epilogue => ActivationKind::of(a),
            _ => (ActivationKind::Linear, 0.0),
        }
    }

    /// Applies the activation to `y` in place (`rows` samples or pixels of `cols`),
    /// unless the bias pass already did.
    pub(crate) fn forward(
        &mut self,
        backend: &B,
        y: &mut B::Buffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let Some(act) = self.activation.filter(|_| !self.in_epilogue) else {
            return Ok(());
        };
        let p = ActivationParams::new(act, rows, cols)?;
        if let Some(pre) = &mut self.pre {
            backend.copy(y, pre, p.len())?;
        }
        backend.activation_fwd_inplace(&p, y)?;
        Ok(())
    }

    /// Turns `dy` (at the output `y`) into the gradient at the pre-activation, in
    /// place; nothing to do when the caller already passes the pre-activation
    /// gradient. `y` is needed unless the activation keeps its own input (GELU).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward(
        &self,
        backend: &B,
        layer: &'static str,
        y: Option<&B::Buffer>,
        dy: &mut B::Buffer,
        rows: usize,
        cols: usize,
        at: GradAt,
    ) -> Result<()> {
        let (Some(act), GradAt::Output) = (self.activation, at) else {
            return Ok(());
        };
        let p = ActivationParams::new(act, rows, cols)?;
        let x = match (&self.pre, y) {
            (Some(pre), _) => pre,
            (None, Some(y)) => y,
            (None, None) => {
                return Err(Error::NotKept {
                    layer,
                    value: "output",
                });
            }
        };
        // GELU reads its input and ignores `y`; the others read `y` only.
        backend.activation_bwd(&p, x, y.unwrap_or(x), dy)?;
        Ok(())
    }
}

/// An activation as a layer of its own: `Relu`, `LeakyRelu`, `Sigmoid`, `Tanh`, `Gelu`,
/// `Softmax` in `model!`.
///
/// # Shapes
/// Input and output have the same shape; softmax normalises over the last axis.
#[derive(Debug)]
pub struct ActivationLayer {
    activation: Activation,
    shape: Shape,
}

impl ActivationLayer {
    fn params(&self, batch: usize) -> Result<ActivationParams> {
        let cols = self.shape.dims().last().copied().unwrap_or(1);
        Ok(ActivationParams::new(
            self.activation,
            batch * self.shape.size() / cols.max(1),
            cols,
        )?)
    }
}

impl<B: Backend> Layer<B> for ActivationLayer {
    type Spec = Activation;

    fn build(
        _backend: &B,
        spec: &Activation,
        input: Shape,
        _max_batch: usize,
        _rng: &mut Rng,
    ) -> Result<Self> {
        let shape = checked_output(spec, input)?;
        Ok(Self {
            activation: *spec,
            shape,
        })
    }

    fn forward(
        &mut self,
        backend: &B,
        x: &B::Buffer,
        y: &mut B::Buffer,
        batch: usize,
        _mode: Mode,
    ) -> Result<()> {
        backend.activation_fwd(&self.params(batch)?, x, y)?;
        Ok(())
    }

    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        if pass.dx.is_none() {
            return Ok(());
        }
        let layer = kiln_shape::Spec::kind_name(&self.activation);
        let p = self.params(pass.batch)?;
        if pass.at == GradAt::Output {
            // GELU differentiates from its input, the others from their output.
            let kept = if self.activation.backward_needs_input() {
                pass.input(layer)?
            } else {
                pass.output(layer)?
            };
            backend.activation_bwd(&p, kept, kept, pass.dy)?;
        }
        match pass.dx {
            Some(dx) => crate::graph::pass_gradient(backend, pass.dy, dx, p.len()),
            None => Ok(()),
        }
    }
}
