//! The dense layer at every time step.

use kiln_kernels::rng::Rng;
use kiln_kernels::{Backend, ViewParams, VisitParams};
use kiln_shape::{DenseSpec, Shape, TimeDenseSpec};

use super::dense::Dense;
use crate::layer::checked_output;
use crate::{Backward, Layer, Mode, Result};

/// `y[t] = activation(x[t] W + b)` at each time step `t`, with one `W` and `b` for
/// all steps (Keras's `TimeDistributed(Dense(units))`; PyTorch's `nn.Linear` on a
/// `[batch, time, features]` tensor). The steps of a batch are one product of
/// `batch * time` rows; softmax runs over each step's units.
///
/// # Shapes
/// - input: `[batch, time, features]`
/// - output: `[batch, time, units]`
/// - `weight`: `[features, units]` (Keras's layout; PyTorch's `Linear.weight` is its
///   transpose), initialised glorot-uniform
/// - `bias`: `[units]`, initialised to zero
#[derive(Debug)]
pub struct TimeDense<B: Backend> {
    time: usize,
    dense: Dense<B>,
}

impl<B: Backend> Layer<B> for TimeDense<B> {
    type Spec = TimeDenseSpec;

    fn build(
        backend: &B,
        spec: &TimeDenseSpec,
        input: Shape,
        max_batch: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        checked_output(spec, input)?;
        let (time, features) = (input.dims()[0], input.dims()[1]);
        let dense_spec = DenseSpec {
            units: spec.units,
            activation: spec.activation,
        };
        let dense = Dense::build(
            backend,
            &dense_spec,
            Shape::new(&[features]),
            max_batch * time,
            rng,
        )?;
        Ok(Self {
            time,
            dense: dense.relabel("TimeDense"),
        })
    }

    fn forward(
        &mut self,
        backend: &B,
        x: &B::Buffer,
        y: &mut B::Buffer,
        batch: usize,
        mode: Mode,
    ) -> Result<()> {
        self.dense.forward(backend, x, y, batch * self.time, mode)
    }

    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let steps = pass.batch * self.time;
        self.dense.backward(
            backend,
            Backward {
                batch: steps,
                ..pass
            },
        )
    }

    fn visit_parameters<'a>(
        &'a mut self,
        layer: &'static str,
        f: VisitParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        self.dense.visit_parameters(layer, f)
    }

    fn parameters<'a>(
        &'a self,
        layer: &'static str,
        f: ViewParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        self.dense.parameters(layer, f)
    }
}
