//! Batch normalisation.

use kiln_kernels::ops::batch_norm::BatchNormParams;
use kiln_kernels::rng::Rng;
use kiln_kernels::{Backend, ParamMut, ParamRef, StateMut, StateRef};
use kiln_kernels::{ViewParams, ViewState, VisitParams, VisitState};
use kiln_shape::{BatchNormSpec, Shape};

use super::activation::FusedActivation;
use crate::layer::checked_output;
use crate::{Backward, Error, Layer, Mode, Result};

const NAME: &str = "BatchNorm";

/// Normalises each channel (the last axis) to zero mean and unit variance, with the
/// batch's statistics in training (updating running averages of them) and with the
/// running averages in inference, then scales by `weight` and shifts by `bias`.
///
/// # Shapes
/// - input and output: `[batch, ..., channels]` (images `[batch, h, w, c]`, vectors
///   `[batch, c]`)
/// - `weight` (Keras's `gamma`) and `bias` (`beta`): `[channels]`, initialised to 1
///   and 0; trained unless the spec's `scale` or `center` is off
/// - state `running_mean` and `running_var`: `[channels]`, initialised to 0 and 1,
///   saved in checkpoints under PyTorch's names and never seen by the optimizer
#[derive(Debug)]
pub struct BatchNorm<B: Backend> {
    spec: BatchNormSpec,
    channels: usize,
    /// Values of one channel in one sample (an image's pixels).
    positions: usize,
    gamma: B::Buffer,
    beta: B::Buffer,
    dgamma: B::Buffer,
    dbeta: B::Buffer,
    running_mean: B::Buffer,
    running_var: B::Buffer,
    /// The mean and inverse standard deviation the last forward pass used.
    saved: B::Buffer,
    workspace: B::Buffer,
    activation: FusedActivation<B>,
    /// Whether the last forward pass used the batch's statistics (training).
    training: bool,
}

impl<B: Backend> BatchNorm<B> {
    fn params(&self, batch: usize) -> Result<BatchNormParams> {
        let (activation, negative_slope) = self.activation.epilogue();
        Ok(BatchNormParams {
            epsilon: self.spec.epsilon,
            momentum: self.spec.momentum,
            unbiased: self.spec.unbiased,
            activation,
            negative_slope,
            ..BatchNormParams::new(batch * self.positions, self.channels)?
        })
    }

    fn channel_shape(&self) -> Shape {
        Shape::new(&[self.channels])
    }
}

impl<B: Backend> Layer<B> for BatchNorm<B> {
    type Spec = BatchNormSpec;

    fn build(
        backend: &B,
        spec: &BatchNormSpec,
        input: Shape,
        max_batch: usize,
        _rng: &mut Rng,
    ) -> Result<Self> {
        checked_output(spec, input)?;
        let channels = input.dims().last().copied().unwrap_or(1);
        let positions = input.size() / channels.max(1);
        let ones = vec![1.0; channels];
        let mut layer = Self {
            spec: *spec,
            channels,
            positions,
            gamma: backend.alloc_from(&ones)?,
            beta: backend.alloc(channels)?,
            dgamma: backend.alloc(channels)?,
            dbeta: backend.alloc(channels)?,
            running_mean: backend.alloc(channels)?,
            running_var: backend.alloc_from(&ones)?,
            saved: backend.alloc(2 * channels)?,
            workspace: backend.alloc(0)?,
            activation: FusedActivation::new(backend, spec.activation, max_batch * input.size())?,
            training: false,
        };
        let p = layer.params(max_batch)?;
        layer.workspace = backend.alloc(backend.batch_norm_workspace_len(&p))?;
        Ok(layer)
    }

    fn forward(
        &mut self,
        backend: &B,
        x: &B::Buffer,
        y: &mut B::Buffer,
        batch: usize,
        mode: Mode,
    ) -> Result<()> {
        let p = self.params(batch)?;
        self.training = mode == Mode::Train;
        if self.training {
            let values = batch * self.positions;
            if values < 2 {
                return Err(Error::TooFewValues {
                    layer: NAME,
                    batch,
                    values,
                });
            }
            backend.batch_norm_fwd_train(
                &p,
                x,
                &self.gamma,
                &self.beta,
                &mut self.running_mean,
                &mut self.running_var,
                &mut self.saved,
                y,
                &mut self.workspace,
            )?;
        } else {
            backend.batch_norm_fwd_eval(
                &p,
                x,
                &self.gamma,
                &self.beta,
                &self.running_mean,
                &self.running_var,
                &mut self.saved,
                y,
            )?;
        }
        self.activation
            .forward(backend, y, batch * self.positions, self.channels)
    }

    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let x = pass.input(NAME)?;
        let p = self.params(pass.batch)?;
        self.activation.backward(
            backend,
            NAME,
            pass.y,
            pass.dy,
            pass.batch * self.positions,
            self.channels,
            pass.at,
        )?;
        backend.batch_norm_bwd(
            &p,
            self.training,
            x,
            pass.dy,
            &self.saved,
            &self.gamma,
            &mut self.dgamma,
            &mut self.dbeta,
            pass.dx,
            &mut self.workspace,
        )?;
        Ok(())
    }

    fn visit_parameters<'a>(
        &'a mut self,
        layer: &'static str,
        f: VisitParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let shape = self.channel_shape();
        if self.spec.scale {
            f(ParamMut {
                layer,
                kind: NAME,
                name: "weight",
                shape,
                value: &mut self.gamma,
                grad: &mut self.dgamma,
            })?;
        }
        if self.spec.center {
            f(ParamMut {
                layer,
                kind: NAME,
                name: "bias",
                shape,
                value: &mut self.beta,
                grad: &mut self.dbeta,
            })?;
        }
        Ok(())
    }

    fn parameters<'a>(
        &'a self,
        layer: &'static str,
        f: ViewParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let shape = self.channel_shape();
        if self.spec.scale {
            f(ParamRef {
                layer,
                kind: NAME,
                name: "weight",
                shape,
                value: &self.gamma,
                grad: &self.dgamma,
            })?;
        }
        if self.spec.center {
            f(ParamRef {
                layer,
                kind: NAME,
                name: "bias",
                shape,
                value: &self.beta,
                grad: &self.dbeta,
            })?;
        }
        Ok(())
    }

    fn visit_state<'a>(
        &'a mut self,
        layer: &'static str,
        f: VisitState<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let shape = self.channel_shape();
        f(StateMut {
            layer,
            name: "running_mean",
            shape,
            value: &mut self.running_mean,
        })?;
        f(StateMut {
            layer,
            name: "running_var",
            shape,
            value: &mut self.running_var,
        })
    }

    fn state<'a>(
        &'a self,
        layer: &'static str,
        f: ViewState<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let shape = self.channel_shape();
        f(StateRef {
            layer,
            name: "running_mean",
            shape,
            value: &self.running_mean,
        })?;
        f(StateRef {
            layer,
            name: "running_var",
            shape,
            value: &self.running_var,
        })
    }
}
