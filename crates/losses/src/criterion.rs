//! [`Criterion`]: a [`Loss`] bound to a model's output shape and backend, with the
//! buffers its value and gradient need, allocated once.

use kiln_kernels::ops::loss::{LossInput, LossKind, LossParams};
use kiln_kernels::ops::metric::argmax;
use kiln_kernels::{Backend, GradAt, Tensor, TensorRef};
use kiln_shape::{Activation, StaticShape};

use crate::{Error, Loss, Reduction, Result};

/// What the model should have predicted for one batch.
#[derive(Clone, Copy, Debug)]
pub enum BatchTargets<'a> {
    /// One class label a sample: sparse categorical cross-entropy, or binary
    /// cross-entropy on a single output (labels 0 and 1).
    Labels(&'a [u32]),
    /// One value a output value, sample after sample: regression targets, one-hot
    /// rows, probabilities.
    Values(&'a [f32]),
}

/// A loss ready to run on batches of outputs of shape `S` on backend `B`.
///
/// Built once (it allocates); [`Criterion::compute`] then writes the gradient into
/// its own tensor and allocates nothing.
#[derive(Debug)]
pub struct Criterion<S: StaticShape, B: Backend> {
    loss: Loss,
    input: LossInput,
    grad_at: GradAt,
    backend: B,
    max_batch: usize,
    target: B::Buffer,
    weights: B::Buffer,
    per_sample: B::Buffer,
    grad: Tensor<S, B>,
    host_target: Vec<f32>,
    host_weights: Vec<f32>,
    host_per_sample: Vec<f32>,
    batch: usize,
    /// The last launch whose value has not been read: the divisor of its sum.
    pending: Option<f64>,
}

impl<S: StaticShape, B: Backend> Criterion<S, B> {
    /// Binds `loss` to outputs of shape `S` made by a last activation
    /// `output_activation`, for batches of up to `max_batch` samples.
    ///
    /// Cross-entropy after the matching activation (softmax for the categorical
    /// losses, sigmoid for the binary one) takes the fused gradient, with respect to
    /// the logits. Asking for `from_logits` when the model ends in softmax or sigmoid is
    /// an error: its output is already probabilities.
    pub fn new(
        loss: Loss,
        backend: &B,
        max_batch: usize,
        output_activation: Option<Activation>,
    ) -> Result<Self> {
        let name = loss.name();
        let config = |detail: String| Error::Config { loss: name, detail };
        let features = S::SIZE;
        let kind = loss.kind;
        if features == 0 {
            return Err(config("the model's output is empty".into()));
        }
        if !(0.0..1.0).contains(&loss.label_smoothing) {
            return Err(config(format!(
                "label smoothing must lie in [0, 1), got {}",
                loss.label_smoothing
            )));
        }
        if loss.label_smoothing != 0.0 && !kind.is_crossentropy() {
            return Err(config(
                "label smoothing applies to cross-entropies only".into(),
            ));
        }
        if loss.from_logits && !kind.is_crossentropy() {
            return Err(config("from_logits applies to cross-entropies only".into()));
        }
        if !(loss.epsilon > 0.0 && loss.epsilon < 0.5) {
            return Err(config(format!(
                "epsilon must lie in (0, 0.5), got {}",
                loss.epsilon
            )));
        }
        if kind == LossKind::Huber && !(loss.delta > 0.0 && loss.delta.is_finite()) {
            return Err(config(format!(
                "delta must be positive, got {}",
                loss.delta
            )));
        }
        if let Some(weights) = &loss.class_weights {
            let classes = if kind == LossKind::BinaryCrossentropy {
                2
            } else {
                features
            };
            if !kind.is_crossentropy() {
                return Err(config(
                    "class weights apply to classification losses only".into(),
                ));
            }
            if weights.len() != classes {
                return Err(config(format!(
                    "{} class weights given for {classes} classes",
                    weights.len()
                )));
            }
            if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
                return Err(config(format!(
                    "class weight {w} is not a finite value >= 0"
                )));
            }
        }
        let activation = output_activation.unwrap_or(Activation::Linear);
        let fuses = match kind {
            LossKind::BinaryCrossentropy => activation == Activation::Sigmoid,
            LossKind::CategoricalCrossentropy | LossKind::SparseCategoricalCrossentropy => {
                activation == Activation::Softmax
            }
            _ => false,
        };
        if loss.from_logits && matches!(activation, Activation::Softmax | Activation::Sigmoid) {
            return Err(config(format!(
                "from_logits is set, but the model ends in {activation:?}, so its output \
                 holds probabilities: drop from_logits (kiln then fuses the gradient), or \
                 end the model without the activation"
            )));
        }
        let (input, grad_at) = if loss.from_logits {
            (LossInput::Logits, GradAt::Output)
        } else if fuses {
            (LossInput::Activated, GradAt::PreActivation)
        } else {
            (LossInput::Prediction, GradAt::Output)
        };
        let targets_per_sample = if kind.sparse_targets() { 1 } else { features };
        Ok(Self {
            input,
            grad_at,
            backend: backend.clone(),
            max_batch,
            target: backend.alloc(max_batch * targets_per_sample)?,
            weights: backend.alloc(max_batch)?,
            per_sample: backend.alloc(max_batch)?,
            grad: Tensor::zeros(backend, max_batch)?,
            host_target: vec![0.0; max_batch * targets_per_sample],
            host_weights: vec![1.0; max_batch],
            host_per_sample: vec![0.0; max_batch],
            batch: 0,
            pending: None,
            loss,
        })
    }

    /// The loss.
    pub fn loss(&self) -> &Loss {
        &self.loss
    }

    /// The number of classes that class labels may name (labels lie in
    /// `0..classes`), or `None` where the loss takes no class labels.
    pub fn classes(&self) -> Option<usize> {
        match self.loss.kind {
            LossKind::SparseCategoricalCrossentropy => Some(S::SIZE),
            LossKind::BinaryCrossentropy if S::SIZE == 1 => Some(2),
            _ => None,
        }
    }

    /// Which gradient [`Criterion::gradient`] holds: pass it to the model's `backward`.
    pub fn grad_at(&self) -> GradAt {
        self.grad_at
    }

    /// What the kernel takes the output to be.
    pub fn input(&self) -> LossInput {
        self.input
    }

    /// The gradient of the last [`Criterion::compute`].
    pub fn gradient(&self) -> &Tensor<S, B> {
        &self.grad
    }

    /// The targets of the last [`Criterion::compute`] as the kernel read them: one
    /// label a sample (as `f32`) for the sparse loss, else one value an output value.
    /// Metrics accumulate from this buffer instead of uploading the targets again.
    pub fn target_buffer(&self) -> &B::Buffer {
        &self.target
    }

    /// Each sample's weighted value from the last [`Criterion::compute`].
    pub fn per_sample(&self) -> &[f32] {
        &self.host_per_sample[..self.batch]
    }

    /// Computes the loss of `output` against `targets` (and optional per-sample
    /// weights), returns the reduced value, and leaves the gradient in
    /// [`Criterion::gradient`]: [`Criterion::launch`] then [`Criterion::value`].
    pub fn compute(
        &mut self,
        output: &TensorRef<'_, S, B>,
        targets: BatchTargets<'_>,
        sample_weights: Option<&[f32]>,
    ) -> Result<f32> {
        self.launch(output, targets, sample_weights)?;
        self.value()
    }

    /// Starts computing the loss of `output` against `targets` (and optional
    /// per-sample weights) and its gradient, without waiting for the backend: the
    /// gradient in [`Criterion::gradient`] can go into the backward pass at once, and
    /// [`Criterion::value`] gives the loss later. The targets are checked here; a
    /// non-finite output fails this call on the CPU, and on a GPU (which finds it
    /// while the step runs on) fails [`Criterion::value`], with every optimizer update
    /// in between skipped, so the step changes no weight either way.
    pub fn launch(
        &mut self,
        output: &TensorRef<'_, S, B>,
        targets: BatchTargets<'_>,
        sample_weights: Option<&[f32]>,
    ) -> Result<()> {
        self.launch_part(output, targets, sample_weights, output.batch())
    }

    /// [`Criterion::launch`] for a batch that is part of a larger one of `total`
    /// samples (a micro-batch of gradient accumulation): the gradient is this batch's
    /// part of the larger batch's, so that the parts' gradients add up to it. With
    /// [`Reduction::Mean`] each sample's gradient is divided by `total` instead of by
    /// this batch's size; [`Reduction::WeightedMean`] divides by this batch's weights
    /// and scales by its share of the samples, `batch / total` (the other parts'
    /// weights are not known yet); `Sum` and `None` are unchanged. The value
    /// ([`Criterion::value`]) stays this batch's loss.
    pub fn launch_part(
        &mut self,
        output: &TensorRef<'_, S, B>,
        targets: BatchTargets<'_>,
        sample_weights: Option<&[f32]>,
        total: usize,
    ) -> Result<()> {
        let name = self.loss.name();
        let batch = output.batch();
        if total < batch {
            return Err(Error::Config {
                loss: name,
                detail: format!("a batch of {batch} samples cannot be part of {total}"),
            });
        }
        if batch > self.max_batch {
            return Err(Error::BatchTooLarge {
                loss: name,
                batch,
                max_batch: self.max_batch,
            });
        }
        let features = S::SIZE;
        let kind = self.loss.kind;
        let target_len = self.stage_targets(targets, batch)?;
        let weighted = self.stage_weights(targets, sample_weights, batch)?;
        let weight_sum: f64 = if weighted {
            self.host_weights[..batch]
                .iter()
                .map(|&w| f64::from(w))
                .sum()
        } else {
            batch as f64
        };
        let weighted_mean = if weight_sum > 0.0 {
            1.0 / weight_sum
        } else {
            0.0
        };
        let grad_scale = match self.loss.reduction {
            Reduction::Mean => 1.0 / total.max(1) as f64,
            Reduction::Sum | Reduction::None => 1.0,
            // `batch / total` is exactly 1 for a whole batch.
            Reduction::WeightedMean => weighted_mean * batch as f64 / total.max(1) as f64,
        };
        let op = |e| Error::Backend(e);
        self.backend
            .upload(&self.host_target[..target_len], &mut self.target)
            .map_err(op)?;
        if weighted {
            self.backend
                .upload(&self.host_weights[..batch], &mut self.weights)
                .map_err(op)?;
        }
        let params = LossParams {
            kind,
            input: self.input,
            weighted: u32::from(weighted),
            label_smoothing: self.loss.label_smoothing,
            delta: self.loss.delta,
            epsilon: self.loss.epsilon,
            grad_scale: grad_scale as f32,
            ..LossParams::new(kind, to_u32(name, batch)?, to_u32(name, features)?)
        };
        self.grad.set_batch(&self.backend, batch)?;
        self.pending = None;
        self.backend
            .loss(
                &params,
                output.buffer(),
                &self.target,
                weighted.then_some(&self.weights),
                &mut self.per_sample,
                self.grad.buffer_mut(),
            )
            .map_err(|e| self.kernel_error(e))?;
        self.batch = batch;
        self.pending = Some(match self.loss.reduction {
            Reduction::Sum => 1.0,
            Reduction::Mean | Reduction::None => 1.0 / batch.max(1) as f64,
            Reduction::WeightedMean => weighted_mean,
        });
        Ok(())
    }

    /// The loss of the last [`Criterion::launch`]: waits for the backend, fails with
    /// what its kernels found since (a non-finite output as
    /// [`Error::NonFiniteOutput`], like [`Criterion::compute`]; any other kernel's
    /// finding, such as a non-finite gradient, as [`Error::Backend`]), and reduces the
    /// per-sample values. Each launch's value is read once.
    pub fn value(&mut self) -> Result<f32> {
        self.backend
            .check_errors()
            .map_err(|e| self.kernel_error(e))?;
        let Some(scale) = self.pending.take() else {
            return Err(Error::Config {
                loss: self.loss.name(),
                detail: "value() reads the loss of a launch(), and none is waiting".into(),
            });
        };
        let batch = self.batch;
        self.backend
            .download(&self.per_sample, &mut self.host_per_sample[..batch])?;
        let sum: f64 = self.host_per_sample[..batch]
            .iter()
            .map(|&v| f64::from(v))
            .sum();
        Ok((sum * scale) as f32)
    }

    /// A backend error of the loss kernel in the loss's terms.
    fn kernel_error(&self, e: kiln_kernels::Error) -> Error {
        match e {
            kiln_kernels::Error::NonFinite {
                op: "loss",
                index,
                value,
                ..
            } => Error::NonFiniteOutput {
                loss: self.loss.name(),
                index: index / S::SIZE,
                position: index % S::SIZE,
                value,
            },
            other => Error::Backend(other),
        }
    }

    /// Checks `targets` and copies them, as `f32`, into the host staging buffer;
    /// returns how many values it holds.
    fn stage_targets(&mut self, targets: BatchTargets<'_>, batch: usize) -> Result<usize> {
        let name = self.loss.name();
        let kind = self.loss.kind;
        let features = S::SIZE;
        let mismatch = |given: usize, expected: usize| Error::BatchMismatch {
            loss: name,
            what: "targets",
            output: batch,
            given,
            expected,
        };
        match targets {
            BatchTargets::Labels(labels) => {
                let classes = match self.classes() {
                    Some(classes) => classes,
                    None => {
                        return Err(Error::Config {
                            loss: name,
                            detail: format!(
                                "class labels need sparse_categorical_crossentropy (or \
                                 binary_crossentropy on one output); this loss takes {} \
                                 values a sample",
                                features
                            ),
                        });
                    }
                };
                if labels.len() != batch {
                    return Err(mismatch(labels.len(), batch));
                }
                for (index, (&label, t)) in labels.iter().zip(&mut self.host_target).enumerate() {
                    if label as usize >= classes {
                        return Err(Error::LabelOutOfRange {
                            loss: name,
                            index,
                            label: u64::from(label),
                            classes,
                        });
                    }
                    *t = label as f32;
                }
                Ok(batch)
            }
            BatchTargets::Values(values) => {
                if kind.sparse_targets() {
                    return Err(Error::Config {
                        loss: name,
                        detail: "sparse_categorical_crossentropy takes class labels \
                                 (BatchTargets::Labels); for one-hot rows use \
                                 categorical_crossentropy"
                            .into(),
                    });
                }
                let expected = batch * features;
                if values.len() != expected {
                    return Err(mismatch(values.len(), expected));
                }
                if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                    return Err(Error::NonFiniteTarget {
                        loss: name,
                        what: "target",
                        index: i / features,
                        value: values[i],
                    });
                }
                self.host_target[..expected].copy_from_slice(values);
                Ok(expected)
            }
        }
    }

    /// Combines sample and class weights into one weight a sample in the host
    /// staging buffer; returns whether there are any.
    fn stage_weights(
        &mut self,
        targets: BatchTargets<'_>,
        sample_weights: Option<&[f32]>,
        batch: usize,
    ) -> Result<bool> {
        let name = self.loss.name();
        let features = S::SIZE;
        let weights = &mut self.host_weights[..batch];
        weights.fill(1.0);
        let mut weighted = false;
        if let Some(sample) = sample_weights {
            if sample.len() != batch {
                return Err(Error::BatchMismatch {
                    loss: name,
                    what: "sample weights",
                    output: batch,
                    given: sample.len(),
                    expected: batch,
                });
            }
            if let Some(index) = sample.iter().position(|w| !w.is_finite()) {
                return Err(Error::NonFiniteTarget {
                    loss: name,
                    what: "sample weight",
                    index,
                    value: sample[index],
                });
            }
            weights.copy_from_slice(sample);
            weighted = true;
        }
        if let Some(class_weights) = &self.loss.class_weights {
            for (i, w) in weights.iter_mut().enumerate() {
                let class = match targets {
                    BatchTargets::Labels(labels) => labels[i] as usize,
                    BatchTargets::Values(values) if features == 1 => usize::from(values[i] >= 0.5),
                    BatchTargets::Values(values) => {
                        argmax(&values[i * features..(i + 1) * features])
                    }
                };
                *w *= class_weights[class];
            }
            weighted = true;
        }
        Ok(weighted)
    }
}

fn to_u32(loss: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Config {
        loss,
        detail: format!("{v} does not fit in 32 bits"),
    })
}
