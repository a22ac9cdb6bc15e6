//! Softmax cross-entropy on the host and a plain gradient-descent step, enough to
//! train a generated model before kiln's losses and optimizers exist.

use kiln::nn::{GradAt, Model, ParamMut, Result};
use kiln::{Backend, Tensor};

/// Host buffers reused by every step, so that a step allocates nothing.
pub struct Trainer<B: Backend, M: Model<B>> {
    probabilities: Vec<f32>,
    grad_host: Vec<f32>,
    grad: Tensor<M::Output, B>,
    value: Vec<f32>,
    gradient: Vec<f32>,
}

/// The loss and the number of correct predictions of one batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchStats {
    /// Mean cross-entropy.
    pub loss: f32,
    /// Samples whose largest probability is their label.
    pub correct: usize,
}

impl<B: Backend, M: Model<B>> Trainer<B, M> {
    /// Buffers for `model`.
    pub fn new(model: &M) -> Result<Self> {
        let classes = M::OUTPUT_SHAPE.size();
        let batch = model.max_batch();
        let mut largest = 0;
        let mut probe = |p: kiln::nn::ParamRef<'_, B>| {
            largest = largest.max(p.shape.size());
            Ok(())
        };
        model.parameters(&mut probe)?;
        Ok(Self {
            probabilities: vec![0.0; batch * classes],
            grad_host: vec![0.0; batch * classes],
            grad: Tensor::zeros(model.backend(), batch)?,
            value: vec![0.0; largest],
            gradient: vec![0.0; largest],
        })
    }

    /// Forward in training mode, softmax cross-entropy against `labels`, backward
    /// with the fused gradient `(p - y) / n` at the logits, and `w -= lr * dw`.
    pub fn step(
        &mut self,
        model: &mut M,
        images: &[f32],
        labels: &[u8],
        lr: f32,
    ) -> Result<BatchStats> {
        let stats = self.forward(model, images, labels, kiln::nn::Mode::Train)?;
        let n = labels.len();
        let classes = M::OUTPUT_SHAPE.size();
        for (i, &label) in labels.iter().enumerate() {
            for c in 0..classes {
                let y = if c == label as usize { 1.0 } else { 0.0 };
                self.grad_host[i * classes + c] =
                    (self.probabilities[i * classes + c] - y) / n as f32;
            }
        }
        self.grad
            .upload(model.backend(), &self.grad_host[..n * classes])?;
        model.zero_grad()?;
        model.backward(&self.grad, GradAt::PreActivation)?;
        let backend = model.backend().clone();
        let (value, gradient) = (&mut self.value, &mut self.gradient);
        model.visit_parameters(&mut |p: ParamMut<'_, B>| {
            let len = p.shape.size();
            backend.download(p.value, &mut value[..len])?;
            backend.download(p.grad, &mut gradient[..len])?;
            for (w, g) in value[..len].iter_mut().zip(&gradient[..len]) {
                *w -= lr * g;
            }
            backend.upload(&value[..len], p.value)?;
            Ok(())
        })?;
        Ok(stats)
    }

    /// Loss and correct predictions of `images` without training.
    pub fn evaluate(&mut self, model: &mut M, images: &[f32], labels: &[u8]) -> Result<BatchStats> {
        self.forward(model, images, labels, kiln::nn::Mode::Eval)
    }

    fn forward(
        &mut self,
        model: &mut M,
        images: &[f32],
        labels: &[u8],
        mode: kiln::nn::Mode,
    ) -> Result<BatchStats> {
        let classes = M::OUTPUT_SHAPE.size();
        let n = labels.len();
        // A clone of a backend is a handle (for the CPU, a reference count).
        let backend = model.backend().clone();
        let out = model.forward_host(images, mode)?;
        out.download(&backend, &mut self.probabilities[..n * classes])?;
        let mut loss = 0.0;
        let mut correct = 0;
        for (i, &label) in labels.iter().enumerate() {
            let row = &self.probabilities[i * classes..(i + 1) * classes];
            loss -= row[label as usize].max(1e-7).ln();
            let best = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (c, &p)| if p > acc.1 { (c, p) } else { acc },
                );
            correct += usize::from(best.0 == label as usize);
        }
        Ok(BatchStats {
            loss: loss / n as f32,
            correct,
        })
    }
}
