//! One training step with kiln's loss and optimizer, and the accuracy of a batch:
//! what the examples need until the training loop of kiln proper takes over.

use kiln::Backend;
use kiln::losses::{Criterion, Loss, Targets};
use kiln::nn::{Mode, Model};
use kiln::optim::{Algorithm, Optimizer};

/// The loss and the number of correct predictions of one batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchStats {
    /// Mean cross-entropy.
    pub loss: f32,
    /// Samples whose largest probability is their label.
    pub correct: usize,
}

/// Sparse categorical cross-entropy and an optimizer for a classifier, with host
/// buffers reused by every step, so that a step allocates nothing.
pub struct Trainer<B: Backend, M: Model<B>> {
    criterion: Criterion<M::Output, B>,
    optimizer: Optimizer<B>,
    labels: Vec<u32>,
    outputs: Vec<f32>,
}

impl<B: Backend, M: Model<B>> Trainer<B, M> {
    /// A trainer for `model` with `algorithm`.
    pub fn new(
        model: &M,
        algorithm: impl Into<Algorithm>,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let criterion = Criterion::for_model(Loss::sparse_categorical_crossentropy(), model)?;
        Ok(Self {
            criterion,
            optimizer: Optimizer::new(algorithm),
            labels: vec![0; model.max_batch()],
            outputs: vec![0.0; model.max_batch() * M::OUTPUT_SHAPE.size()],
        })
    }

    /// Forward in training mode, the loss against `labels`, backward, and one update.
    pub fn step(
        &mut self,
        model: &mut M,
        images: &[f32],
        labels: &[u8],
    ) -> Result<BatchStats, Box<dyn std::error::Error>> {
        let stats = self.forward(model, images, labels, Mode::Train)?;
        model.zero_grad()?;
        model.backward(self.criterion.gradient(), self.criterion.grad_at())?;
        self.optimizer.step(model)?;
        Ok(stats)
    }

    /// Loss and correct predictions of `images` without training.
    pub fn evaluate(
        &mut self,
        model: &mut M,
        images: &[f32],
        labels: &[u8],
    ) -> Result<BatchStats, Box<dyn std::error::Error>> {
        self.forward(model, images, labels, Mode::Eval)
    }

    fn forward(
        &mut self,
        model: &mut M,
        images: &[f32],
        labels: &[u8],
        mode: Mode,
    ) -> Result<BatchStats, Box<dyn std::error::Error>> {
        let n = labels.len();
        let classes = M::OUTPUT_SHAPE.size();
        for (dst, &label) in self.labels.iter_mut().zip(labels) {
            *dst = u32::from(label);
        }
        // A clone of a backend is a handle (for the CPU, a reference count).
        let backend = model.backend().clone();
        let output = model.forward_host(images, mode)?;
        let loss = self
            .criterion
            .compute(&output, Targets::Classes(&self.labels[..n]), None)?;
        output.download(&backend, &mut self.outputs[..n * classes])?;
        let correct = self.outputs[..n * classes]
            .chunks(classes)
            .zip(labels)
            .filter(|(row, label)| {
                let predicted = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1));
                predicted.map(|(c, _)| c) == Some(usize::from(**label))
            })
            .count();
        Ok(BatchStats { loss, correct })
    }
}
