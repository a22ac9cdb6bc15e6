//! The options of [`Trainer::evaluate_with`] and [`Trainer::predict_with`], and mirror
//! test-time augmentation: the output for an image is the mean of the model's outputs
//! for the image and for its mirror image.
//!
//! The mirror images come from a second batcher over the same samples, in the same
//! order, whose augmentation is [`Augment::mirror`]: the batcher's own flip, on its
//! background threads. The two outputs are averaged on the host into buffers sized
//! once for the largest batch (an output is a few values a sample, and the loss reads
//! its value back every batch anyway), so a steady-state batch allocates nothing.
//!
//! [`Trainer::evaluate_with`]: crate::Trainer::evaluate_with
//! [`Trainer::predict_with`]: crate::Trainer::predict_with

use kiln_data::{Augment, Batch, BatchOptions, Batcher, Epoch, Pipeline};
use kiln_kernels::{Backend, Tensor, TensorRef};
use kiln_nn::{Mode, Model};
use kiln_shape::StaticShape;

use crate::trainer::SharedData;
use crate::{Error, Result};

/// Test-time augmentation: views of each sample whose outputs are averaged into the
/// sample's output, from which the loss and the metrics are then computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tta {
    /// The model's output for the sample as it is.
    #[default]
    None,
    /// The mean of the model's outputs for the image and for its mirror image (the
    /// width axis reversed), as the CIFAR-10 speed records evaluate.
    ///
    /// The mean is of what the model outputs: of the probabilities when it ends in
    /// softmax or sigmoid, of the logits when it ends without an activation (with a
    /// loss `from_logits`, as in the speed records). For image models only (samples
    /// `[height, width, channels]`); others are an [`Error::Config`]. Each batch
    /// runs the model twice.
    Mirror,
}

impl Tta {
    /// The augmentation of the second view for a model `name` taking samples of
    /// `input`, if there is one.
    fn second_view(self, name: &str, input: kiln_shape::Shape) -> Result<Option<Augment>> {
        match self {
            Self::None => Ok(None),
            Self::Mirror if input.rank() == 3 => Ok(Some(Augment::none().mirror())),
            Self::Mirror => Err(Error::Config(format!(
                "mirror test-time augmentation flips images along their width, but {name} \
                 takes samples of shape {input}, not [height, width, channels]: use Tta::None"
            ))),
        }
    }
}

/// The options of [`Trainer::evaluate_with`] and [`Trainer::predict_with`]
/// (Keras's `evaluate` and `predict` arguments, and test-time augmentation).
///
/// ```
/// use kiln::prelude::*;
///
/// kiln::model! {
///     pub struct Tiny {
///         input: [28, 28, 1],
///         conv: Conv2d(filters = 4, kernel = 3, stride = 2, activation = relu),
///         flat: Flatten,
///         out: Dense(10, softmax),
///     }
/// }
///
/// let (_, test) = kiln::data::mnist::embedded()?;
/// let test = test.select(&(0..100).collect::<Vec<_>>())?;
/// let model = Tiny::new(&Cpu::new()?, 64, 7)?;
/// let mut trainer = Trainer::new(model, Loss::sparse_categorical_crossentropy(), Optimizer::new(Adam::default()))?
///     .metrics([Metric::Accuracy]);
/// let options = EvaluateOptions::new(64)
///     .pipeline(Pipeline::new().scale(1.0 / 255.0))
///     .tta(Tta::Mirror);
/// let evaluation = trainer.evaluate_with(test.clone(), &options)?;
/// let probabilities = trainer.predict_with(test, &options)?; // 100 x 10, each the mean of two
/// assert_eq!((evaluation.samples, probabilities.len()), (100, 1000));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`Trainer::evaluate_with`]: crate::Trainer::evaluate_with
/// [`Trainer::predict_with`]: crate::Trainer::predict_with
#[derive(Clone, Debug, PartialEq)]
pub struct EvaluateOptions {
    /// Samples per batch, from 1 to the model's `max_batch` (more is an error, as in
    /// `fit`).
    pub batch_size: usize,
    /// Preprocessing of every sample (the training pipeline, as a rule).
    pub pipeline: Pipeline,
    /// Test-time augmentation.
    pub tta: Tta,
}

impl EvaluateOptions {
    /// Batches of `batch_size`, no preprocessing, no test-time augmentation.
    pub fn new(batch_size: usize) -> Self {
        Self {
            batch_size,
            pipeline: Pipeline::new(),
            tta: Tta::None,
        }
    }

    /// Preprocessing of every sample.
    #[must_use]
    pub fn pipeline(mut self, pipeline: Pipeline) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// Test-time augmentation.
    #[must_use]
    pub fn tta(mut self, tta: Tta) -> Self {
        self.tta = tta;
        self
    }
}

/// The batches that evaluation and prediction read: the samples as they are and,
/// with mirror test-time augmentation, mirrored.
pub(crate) struct EvalBatches<S: StaticShape, B: Backend> {
    pub plain: Batcher<SharedData>,
    pub mirror: Option<MirrorView<S, B>>,
}

/// The mirrored view: its batches and the buffers of the mean.
pub(crate) struct MirrorView<S: StaticShape, B: Backend> {
    pub batcher: Batcher<SharedData>,
    pub buffers: MeanBuffers<S, B>,
}

impl<S: StaticShape, B: Backend> EvalBatches<S, B> {
    /// Batches of `data` for model `M` under `options` (unshuffled, unaugmented),
    /// and a mirrored view of them if `tta` asks for one.
    pub fn new<M: Model<B, Output = S>>(
        data: SharedData,
        options: BatchOptions,
        tta: Tta,
        backend: &B,
    ) -> Result<Self> {
        let mirror = match tta.second_view(M::NAME, M::INPUT_SHAPE)? {
            Some(augment) => Some(MirrorView {
                buffers: MeanBuffers::new(backend, options.batch_size)?,
                batcher: Batcher::new(
                    std::sync::Arc::clone(&data),
                    options.clone().augment(augment),
                )?,
            }),
            None => None,
        };
        Ok(Self {
            plain: Batcher::new(data, options)?,
            mirror,
        })
    }

    /// The batcher of the samples as they are, and the epoch of the mirrored view
    /// with its buffers: the batches of both come in the same order.
    pub fn epochs(&mut self) -> (&mut Batcher<SharedData>, Option<Mirrored<'_, S, B>>) {
        let mirror = self.mirror.as_mut().map(|m| Mirrored {
            epoch: m.batcher.epoch(0),
            buffers: &mut m.buffers,
        });
        (&mut self.plain, mirror)
    }
}

/// An epoch of the mirrored view in progress, beside the plain one.
pub(crate) struct Mirrored<'a, S: StaticShape, B: Backend> {
    epoch: Epoch<'a, SharedData>,
    pub buffers: &'a mut MeanBuffers<S, B>,
}

impl<S: StaticShape, B: Backend> Mirrored<'_, S, B> {
    /// The mirrored batch of `plain`.
    pub fn next_for(&mut self, plain: &Batch) -> Result<Batch> {
        let mirrored = self.epoch.next().transpose()?;
        match mirrored {
            Some(m) if m.indices() == plain.indices() => Ok(m),
            _ => Err(Error::Config(format!(
                "the mirrored view lost step with batch {} of the evaluation",
                plain.index()
            ))),
        }
    }
}

/// The host and backend buffers of the mean of two views' outputs, sized once.
pub(crate) struct MeanBuffers<S: StaticShape, B: Backend> {
    /// The second view's outputs.
    second: Vec<f32>,
    /// The mean, on the host.
    host: Vec<f32>,
    /// The mean, on the backend, for the loss and the metrics.
    device: Tensor<S, B>,
}

impl<S: StaticShape, B: Backend> MeanBuffers<S, B> {
    fn new(backend: &B, max_batch: usize) -> Result<Self> {
        Ok(Self {
            second: vec![0.0; max_batch * S::SIZE],
            host: vec![0.0; max_batch * S::SIZE],
            device: Tensor::zeros(backend, max_batch)?,
        })
    }

    /// Writes into `dst` (`S::SIZE` values for each sample of `plain`) the mean of
    /// `model`'s outputs for the `plain` and `mirrored` inputs.
    pub fn mean_into<M: Model<B, Output = S>>(
        &mut self,
        model: &mut M,
        backend: &B,
        inputs: [&[f32]; 2],
        dst: &mut [f32],
    ) -> Result<()> {
        let second = &mut self.second[..dst.len()];
        average(model, backend, inputs, dst, second)
    }

    /// The mean of `model`'s outputs for the `plain` and `mirrored` inputs of `batch`
    /// samples, on the backend.
    pub fn mean<M: Model<B, Output = S>>(
        &mut self,
        model: &mut M,
        backend: &B,
        inputs: [&[f32]; 2],
        batch: usize,
    ) -> Result<TensorRef<'_, S, B>> {
        let len = batch * S::SIZE;
        let Self {
            second,
            host,
            device,
        } = self;
        average(model, backend, inputs, &mut host[..len], &mut second[..len])?;
        device.upload(backend, &host[..len])?;
        Ok(device.view())
    }
}

/// Writes into `dst` the mean of `model`'s outputs for the two `inputs`, with
/// `second` (as long as `dst`) for the second output.
fn average<B: Backend, M: Model<B>>(
    model: &mut M,
    backend: &B,
    [plain, mirrored]: [&[f32]; 2],
    dst: &mut [f32],
    second: &mut [f32],
) -> Result<()> {
    model
        .forward_host(plain, Mode::Eval)?
        .download(backend, dst)?;
    model
        .forward_host(mirrored, Mode::Eval)?
        .download(backend, second)?;
    for (a, &b) in dst.iter_mut().zip(second.iter()) {
        *a = (*a + b) * 0.5;
    }
    Ok(())
}
