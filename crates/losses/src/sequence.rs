//! [`SequenceCriterion`]: sparse categorical cross-entropy at every time step of a
//! `[time, classes]` output, one class label a step (a language model's next-token
//! loss), optionally masked where sequences are padded.

use kiln_kernels::{Backend, GradAt, Tensor, TensorRef};
use kiln_shape::{Activation, Rank1, Rank2};

use crate::{BatchTargets, Criterion, Error, Loss, Reduction, Result};

/// A loss over each time step of a batch of `[T, V]` outputs, each step its own
/// row of `V` classes: the mean over steps (over the unmasked steps with a mask), as
/// PyTorch's `cross_entropy` on `[batch * time, classes]` and Keras's on
/// `[batch, time, classes]` give.
///
/// The rows of a batch are one batch of `batch * T` rows for the underlying
/// [`Criterion`], so the fused softmax gradient and the checks on labels are the
/// same; the gradient is then laid out as the model's output.
#[derive(Debug)]
pub struct SequenceCriterion<const T: usize, const V: usize, B: Backend> {
    steps: Criterion<Rank1<V>, B>,
    /// The same loss with a weighted mean, for masked batches.
    masked: Criterion<Rank1<V>, B>,
    grad: Tensor<Rank2<T, V>, B>,
    backend: B,
}

impl<const T: usize, const V: usize, B: Backend> SequenceCriterion<T, V, B> {
    /// Binds `loss` (a cross-entropy that takes class labels) to outputs of `[T, V]`
    /// made by `output_activation`, for batches of up to `max_batch` sequences.
    pub fn new(
        loss: Loss,
        backend: &B,
        max_batch: usize,
        output_activation: Option<Activation>,
    ) -> Result<Self> {
        let rows = max_batch * T;
        let masked = Criterion::new(
            loss.clone().reduction(Reduction::WeightedMean),
            backend,
            rows,
            output_activation,
        )?;
        Ok(Self {
            steps: Criterion::new(loss, backend, rows, output_activation)?,
            masked,
            grad: Tensor::zeros(backend, max_batch)?,
            backend: backend.clone(),
        })
    }

    /// Which gradient [`SequenceCriterion::gradient`] holds.
    pub fn grad_at(&self) -> GradAt {
        self.steps.grad_at()
    }

    /// The gradient of the last [`SequenceCriterion::compute`], shaped as the output.
    pub fn gradient(&self) -> &Tensor<Rank2<T, V>, B> {
        &self.grad
    }

    /// The loss of `output` against one label a step (`batch * T` labels, sequence
    /// after sequence), with an optional mask of one weight a step (0 where a
    /// sequence is padded): the mean over the weighted steps. Leaves the gradient in
    /// [`SequenceCriterion::gradient`].
    pub fn compute(
        &mut self,
        output: &TensorRef<'_, Rank2<T, V>, B>,
        labels: &[u32],
        mask: Option<&[f32]>,
    ) -> Result<f32> {
        let batch = output.batch();
        if labels.len() != batch * T {
            return Err(Error::BatchMismatch {
                loss: self.steps.loss().name(),
                what: "targets (one a time step)",
                output: batch,
                given: labels.len(),
                expected: batch * T,
            });
        }
        let rows = TensorRef::<Rank1<V>, B>::new(output.buffer(), batch * T);
        let criterion = match mask {
            Some(_) => &mut self.masked,
            None => &mut self.steps,
        };
        let value = criterion.compute(&rows, BatchTargets::Labels(labels), mask)?;
        self.grad.set_batch(&self.backend, batch)?;
        self.backend.copy(
            criterion.gradient().buffer(),
            self.grad.buffer_mut(),
            batch * T * V,
        )?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_kernels::{Cpu, Storage};

    /// Two sequences of 3 steps over 4 classes, raw probabilities (no fusion): the
    /// loss is the mean of `-ln p[label]` over the 6 steps, or over the unmasked ones.
    #[test]
    fn the_mean_over_every_step_or_over_the_unmasked_ones() {
        let cpu = Cpu::with_threads(1).unwrap();
        let p: Vec<f32> = (0..24).map(|i| [0.1, 0.2, 0.3, 0.4][i % 4]).collect();
        let out = Tensor::<Rank2<3, 4>, Cpu>::from_slice(&cpu, 2, &p).unwrap();
        let labels = [0, 1, 2, 3, 3, 1];
        let mut loss = SequenceCriterion::<3, 4, Cpu>::new(
            Loss::sparse_categorical_crossentropy(),
            &cpu,
            2,
            None,
        )
        .unwrap();
        let value = loss.compute(&out.view(), &labels, None).unwrap();
        let nll = |l: usize| -f64::from([0.1f32, 0.2, 0.3, 0.4][l]).ln();
        let want: f64 = labels.iter().map(|&l| nll(l as usize)).sum::<f64>() / 6.0;
        assert!((f64::from(value) - want).abs() < 1e-6, "{value} vs {want}");
        assert_eq!(loss.gradient().batch(), 2);
        let mask = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0];
        let value = loss.compute(&out.view(), &labels, Some(&mask)).unwrap();
        let want = (nll(0) + nll(1) + nll(3)) / 3.0;
        assert!((f64::from(value) - want).abs() < 1e-6, "{value} vs {want}");
        // The gradient of a masked step is zero.
        let g = cpu.to_host(loss.gradient().buffer(), 24).unwrap();
        assert!(g[8..12].iter().all(|&v| v == 0.0));
        assert!(loss.compute(&out.view(), &labels[..5], None).is_err());
    }
}
