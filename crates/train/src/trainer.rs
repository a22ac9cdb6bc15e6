//! [`Trainer`]: a model, a loss, an optimizer and metrics (Keras's `compile`), and
//! `fit`, `evaluate` and `predict` over kiln-data data sets, with test-time
//! augmentation ([`Tta`]) in evaluation, prediction and validation.

use std::sync::Arc;
use std::time::Instant;

use kiln_data::{Augment, BatchOptions, Batcher, Dataset, Pipeline, Subset, Target, TargetKind};
use kiln_distributed::World;
use kiln_kernels::{Backend, Group, ParamRef};
use kiln_losses::{BatchTargets, Criterion, Loss};
use kiln_nn::{Mode, Model};
use kiln_optim::{Ema, Optimizer};

use crate::callbacks::{Callback, Context};
use crate::distributed::{self, Reducer};
use crate::evaluate::{EvalBatches, EvaluateOptions, Tta};
use crate::metrics::{ConfusionMatrix, Metric, MetricSet};
use crate::progress::{Progress, Verbosity};
use crate::{EpochLog, Error, History, Result};

/// A data set shared between the batcher's threads.
pub type SharedData = Arc<dyn Dataset>;

/// Where validation data comes from.
#[derive(Clone, Default)]
pub enum Validation {
    /// No validation.
    #[default]
    None,
    /// A separate data set, evaluated after every epoch.
    Data(SharedData),
    /// The last fraction of the training data, held out (Keras's
    /// `validation_split`: taken before any shuffling).
    Split(f64),
}

impl std::fmt::Debug for Validation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => write!(f, "None"),
            Self::Data(d) => write!(f, "Data({} samples)", d.len()),
            Self::Split(x) => write!(f, "Split({x})"),
        }
    }
}

/// The options of [`Trainer::fit`] (Keras's `fit` arguments).
pub struct FitOptions<B: Backend, M: Model<B>> {
    /// The last epoch to run (exclusive, counting from 0; resumed runs start at
    /// `initial_epoch`).
    pub epochs: usize,
    /// Samples per batch; at most the model's `max_batch`.
    pub batch_size: usize,
    /// Validation after every epoch.
    pub validation: Validation,
    /// Test-time augmentation of the validation data.
    pub validation_tta: Tta,
    /// Validate every this many epochs (and after the last), as Keras's
    /// `validation_freq`; 1 by default.
    pub validation_freq: usize,
    /// Shuffle the training data every epoch.
    pub shuffle: bool,
    /// The seed of the shuffling and of the augmentation.
    pub seed: u64,
    /// The epoch to start from when resuming.
    pub initial_epoch: usize,
    /// Called around epochs and batches.
    pub callbacks: Vec<Box<dyn Callback<B, M>>>,
    /// How much to print.
    pub verbose: Verbosity,
    /// Preprocessing of every sample, training and validation alike.
    pub pipeline: Pipeline,
    /// Augmentation of the training images.
    pub augment: Augment,
    /// Background threads preparing batches.
    pub workers: usize,
    /// The processes training together: see [`FitOptions::distributed`].
    pub distributed: Option<World>,
    /// Stop with an error on a non-finite loss or gradient (on by default).
    pub terminate_on_nan: bool,
    /// Batches whose gradients add up before each optimizer update (1: an update
    /// every batch); see [`FitOptions::accumulate`].
    pub accumulate: usize,
}

impl<B: Backend, M: Model<B>> FitOptions<B, M> {
    /// `epochs` epochs of batches of `batch_size`, shuffled, seed 0, a progress bar,
    /// no validation.
    pub fn new(epochs: usize, batch_size: usize) -> Self {
        Self {
            epochs,
            batch_size,
            validation: Validation::None,
            validation_tta: Tta::None,
            validation_freq: 1,
            shuffle: true,
            seed: 0,
            initial_epoch: 0,
            callbacks: Vec::new(),
            verbose: Verbosity::Bar,
            pipeline: Pipeline::new(),
            augment: Augment::none(),
            workers: 1,
            distributed: None,
            terminate_on_nan: true,
            accumulate: 1,
        }
    }

    /// Validates on `data` after every epoch.
    #[must_use]
    pub fn validation_data(mut self, data: impl Dataset + 'static) -> Self {
        self.validation = Validation::Data(Arc::new(data));
        self
    }

    /// Holds out the last `fraction` of the training data for validation.
    #[must_use]
    pub fn validation_split(mut self, fraction: f64) -> Self {
        self.validation = Validation::Split(fraction);
        self
    }

    /// Validates with test-time augmentation: with [`Tta::Mirror`], `val_loss` and the
    /// `val_` metrics are those of the mean of the outputs for each image and its
    /// mirror image, as [`Trainer::evaluate_with`] computes them.
    #[must_use]
    pub fn validation_tta(mut self, tta: Tta) -> Self {
        self.validation_tta = tta;
        self
    }

    /// Validates every `n` epochs (counting from the first, and always after the
    /// last) instead of after every epoch: Keras's `validation_freq`, for runs whose
    /// validation is a large share of an epoch.
    #[must_use]
    pub fn validation_freq(mut self, n: usize) -> Self {
        self.validation_freq = n;
        self
    }

    /// The seed of shuffling and augmentation.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Adds a callback.
    #[must_use]
    pub fn callback(mut self, callback: impl Callback<B, M> + 'static) -> Self {
        self.callbacks.push(Box::new(callback));
        self
    }

    /// How much to print.
    #[must_use]
    pub fn verbose(mut self, verbose: Verbosity) -> Self {
        self.verbose = verbose;
        self
    }

    /// Preprocessing of every sample.
    #[must_use]
    pub fn pipeline(mut self, pipeline: Pipeline) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// Augmentation of the training images.
    #[must_use]
    pub fn augment(mut self, augment: Augment) -> Self {
        self.augment = augment;
        self
    }

    /// Resumes at `epoch`.
    #[must_use]
    pub fn initial_epoch(mut self, epoch: usize) -> Self {
        self.initial_epoch = epoch;
        self
    }

    /// Shuffling on or off.
    #[must_use]
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }

    /// Background threads preparing batches.
    #[must_use]
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Data-parallel training with the ranks of `world` (Horovod's and PyTorch DDP's;
    /// [`World::init`] under `mpirun`): each rank trains on its part of every global
    /// batch of `ranks x batch_size` samples (`batch_size` is the local batch), the
    /// gradients are averaged across ranks before each optimizer step, the loss,
    /// metrics and validation are summed across ranks, and every rank returns the
    /// same [`History`]. Progress and the callbacks that write files run on rank 0
    /// only. A world of one trains as without it. The details are in
    /// `kiln::guide::distributed`.
    #[must_use]
    pub fn distributed(mut self, world: World) -> Self {
        self.distributed = Some(world);
        self
    }

    /// Stopping on a non-finite loss or gradient on or off.
    #[must_use]
    pub fn terminate_on_nan(mut self, on: bool) -> Self {
        self.terminate_on_nan = on;
        self
    }

    /// Gradient accumulation: the gradients of `n` batches (micro-batches) add up
    /// before each optimizer update (Keras's `gradient_accumulation_steps`,
    /// Lightning's `accumulate_grad_batches`), so that batches of `batch_size` train
    /// as batches of `n * batch_size` would, with the memory of the smaller ones.
    ///
    /// Each micro-batch's gradient is scaled by its share of its update's samples:
    /// with the default mean reduction, the update's gradient is the mean over all of
    /// them, as for one large batch. An epoch whose batches are not a multiple of `n`
    /// ends with an update over the batches left (as in Lightning, but scaled to the
    /// mean over their samples, where Lightning divides every micro-batch's loss by
    /// `n`). So `accumulate(n)` with batches of `b` gives the weights that batches of
    /// `n * b` give, to rounding, for a model whose layers treat samples apart;
    /// batch normalisation normalises each micro-batch by its own statistics and
    /// updates its running ones once a micro-batch, as in PyTorch and Keras.
    ///
    /// Schedules count optimizer updates; the loss, the metrics and the progress
    /// count samples and batches; callbacks see every micro-batch, the moving
    /// average every update.
    #[must_use]
    pub fn accumulate(mut self, n: usize) -> Self {
        self.accumulate = n;
        self
    }
}

/// Where a batch falls among the micro-batches of its optimizer update.
#[derive(Clone, Copy, Debug)]
struct Part {
    /// The update's first batch: the gradients start from zero.
    first: bool,
    /// The update's last batch: the optimizer steps after it.
    last: bool,
    /// Samples of the update's batches together.
    samples: usize,
}

impl Part {
    /// Batch `step` of an epoch of `steps` batches of `batch_size` (the last one
    /// shorter, `samples` in all), with updates every `accumulate` batches and after
    /// the last.
    fn of(step: usize, steps: usize, accumulate: usize, batch_size: usize, samples: usize) -> Self {
        let start = step - step % accumulate;
        let end = (start + accumulate).min(steps);
        Self {
            first: step == start,
            last: step + 1 == end,
            samples: (end * batch_size).min(samples) - start * batch_size,
        }
    }
}

/// The result of [`Trainer::evaluate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// `loss`, then each metric.
    pub values: Vec<(String, f64)>,
    /// The confusion matrix, for classification metrics.
    pub confusion: Option<ConfusionMatrix>,
    /// Samples evaluated.
    pub samples: usize,
}

impl Evaluation {
    /// The value named `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// A model ready to train: its loss, optimizer and metrics, and optionally a moving
/// average of its weights.
///
/// Training and inference modes are the trainer's business: `fit` runs batches in
/// [`Mode::Train`] (dropout on), `evaluate` and `predict` in [`Mode::Eval`].
pub struct Trainer<B: Backend, M: Model<B>> {
    model: M,
    criterion: Criterion<M::Output, B>,
    optimizer: Optimizer<B>,
    metrics: Vec<Metric>,
    /// The moving average of the weights that validation, `evaluate` and `predict`
    /// use once it has seen a step.
    ema: Option<Ema<B>>,
    backend: B,
    /// The gradient all-reduce of the data-parallel `fit` under way.
    reducer: Option<Reducer>,
}

impl<B: Backend, M: Model<B>> std::fmt::Debug for Trainer<B, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("model", &M::NAME)
            .field("loss", &self.criterion.loss().name())
            .field("optimizer", &self.optimizer.algorithm().name())
            .field("metrics", &self.metrics)
            .finish()
    }
}

/// Whether the model's input shape is the data's.
fn check_shape<B: Backend, M: Model<B>>(data: &dyn Dataset, what: &str) -> Result<()> {
    let want = M::INPUT_SHAPE;
    if data.shape() != want.dims() {
        return Err(Error::Config(format!(
            "the {what} samples have shape {:?}, but {} takes {want}",
            data.shape(),
            M::NAME
        )));
    }
    Ok(())
}

/// Checks, before the first step, that every class label of `data` names one of the
/// model's `classes`: a label found mid-epoch would fail its step after earlier ones
/// had already changed the weights. One pass over the labels, made only where the data
/// set declares more classes than the model has.
fn check_labels(
    data: &dyn Dataset,
    classes: Option<usize>,
    what: &'static str,
    model: &'static str,
) -> Result<()> {
    let (Some(classes), TargetKind::Classes(declared)) = (classes, data.target_kind()) else {
        return Ok(());
    };
    if declared <= classes {
        return Ok(());
    }
    for index in 0..data.len() {
        if let Target::Class(label) = data.get(index)?.target
            && label as usize >= classes
        {
            return Err(Error::Label {
                data: what,
                index,
                label,
                classes,
                model,
            });
        }
    }
    Ok(())
}

/// The first non-finite value among `batch`'s inputs: the sample's index in the data
/// set, the value's position in the sample, and the value.
fn non_finite_input(batch: &kiln_data::Batch) -> Option<(usize, usize, f32)> {
    let per_sample = batch.sample_shape().iter().product::<usize>().max(1);
    let at = batch.inputs().iter().position(|v| !v.is_finite())?;
    let index = batch.indices().get(at / per_sample).copied()?;
    Some((index, at % per_sample, batch.inputs()[at]))
}

/// `e`, with the file and place that `data` gives for the sample an
/// [`Error::NonFiniteInput`] names.
fn with_origin(mut e: Error, data: &dyn Dataset) -> Error {
    if let Error::NonFiniteInput { index, origin, .. } = &mut e {
        *origin = data.origin(*index);
    }
    e
}

/// The loss's view of a batch's targets.
fn targets(batch: &kiln_data::Batch) -> BatchTargets<'_> {
    match batch.targets() {
        kiln_data::BatchTargets::Labels(labels) => BatchTargets::Labels(labels),
        kiln_data::BatchTargets::Values { values, .. } => BatchTargets::Values(values),
    }
}

/// Where a model's tensors stopped being finite.
struct Health {
    /// Layers with a non-finite value, in model order.
    layers: Vec<String>,
    /// The finite tensor of largest L2 norm (layer, tensor), and the norm.
    largest: Option<(&'static str, &'static str, f64)>,
}

/// The layers whose tensors hold non-finite values (`grad`: the gradients, else the
/// values), and the tensor with the largest finite norm.
fn non_finite_layers<B: Backend, M: Model<B>>(model: &M, grad: bool) -> Result<Health> {
    let backend = model.backend().clone();
    let mut layers: Vec<String> = Vec::new();
    // Names are `&'static str`s, so checking a healthy model allocates nothing: this
    // runs after every training step.
    let mut largest: Option<(&'static str, &'static str, f64)> = None;
    model.parameters(&mut |p: ParamRef<'_, B>| {
        let buffer = if grad { p.grad } else { p.value };
        let norm = backend.sum_squares(buffer, p.shape.size())?.sqrt();
        if !norm.is_finite() {
            if !layers.iter().any(|l| l == p.layer) {
                layers.push(p.layer.to_string());
            }
        } else if largest.is_none_or(|(_, _, n)| norm > n) {
            largest = Some((p.layer, p.name, norm));
        }
        Ok(())
    })?;
    Ok(Health { layers, largest })
}

/// Gradients checked for non-finite values in one call (a GPU checks up to sixteen in
/// one launch).
const GRADIENT_GROUP: usize = 16;

/// The error of a training step that failed with `e`: with `terminate_on_nan`, a
/// non-finite model output or gradient becomes [`Error::NonFinite`] with what the
/// model's tensors show (the failed step changed no weight, and its gradients are
/// still in place); anything else passes through.
fn step_failure<B: Backend, M: Model<B>>(
    model: &M,
    e: Error,
    batch: &kiln_data::Batch,
    (epoch, step): (usize, usize),
    terminate_on_nan: bool,
) -> Error {
    if let Error::Loss(kiln_losses::Error::NonFiniteOutput { .. }) = &e
        && let Some((index, position, value)) = non_finite_input(batch)
    {
        return Error::NonFiniteInput {
            epoch,
            step,
            index,
            position,
            value,
            origin: None,
        };
    }
    if !terminate_on_nan {
        return e;
    }
    let detail = match &e {
        Error::Loss(kiln_losses::Error::NonFiniteOutput { index, value, .. }) => {
            // The data set's index, not the position in the (shuffled) batch.
            let index = batch.indices().get(*index).copied().unwrap_or(*index);
            let weights = match non_finite_layers::<B, M>(model, false) {
                Err(e) => return e,
                Ok(Health { layers, .. }) if !layers.is_empty() => {
                    format!("the weights of {} are no longer finite", layers.join(", "))
                }
                Ok(Health {
                    largest: Some((layer, tensor, norm)),
                    ..
                }) => format!(
                    "every weight is finite, but `{layer}.{tensor}` has grown to a norm of \
                     {norm:.3e}, so the activations overflowed: lower the learning rate"
                ),
                Ok(_) => "the model has no weights".to_string(),
            };
            format!(
                "the model's output for sample {index} of the data set is {value}, its input \
                 finite; {weights}"
            )
        }
        // From the check on the CPU, or with the loss from a GPU.
        Error::Backend(kiln_kernels::Error::NonFinite {
            op: "check_finite", ..
        })
        | Error::Loss(kiln_losses::Error::Backend(kiln_kernels::Error::NonFinite {
            op: "check_finite",
            ..
        })) => match non_finite_layers::<B, M>(model, true) {
            Err(e) => return e,
            Ok(Health { layers, .. }) => match layers.last() {
                Some(origin) => format!(
                    "the gradient went non-finite first in layer `{origin}` (backward runs \
                     from the output); non-finite in: {}",
                    layers.join(", ")
                ),
                None => "a gradient went non-finite".to_string(),
            },
        },
        _ => return e,
    };
    Error::NonFinite {
        epoch,
        step,
        detail,
    }
}

impl<B: Backend, M: Model<B>> Trainer<B, M> {
    /// Binds `model` to `loss` and `optimizer` (Keras's `compile`).
    pub fn new(model: M, loss: Loss, optimizer: Optimizer<B>) -> Result<Self> {
        let criterion = Criterion::new(
            loss,
            model.backend(),
            model.max_batch(),
            M::OUTPUT_ACTIVATION,
        )?;
        let backend = model.backend().clone();
        Ok(Self {
            model,
            criterion,
            optimizer,
            metrics: Vec::new(),
            ema: None,
            backend,
            reducer: None,
        })
    }

    /// The same with a moving average of the weights (and of the saved state, such as
    /// running statistics), updated after every training step and used by
    /// validation, [`Trainer::evaluate`] and [`Trainer::predict`] once it has seen a
    /// step (PyTorch's `AveragedModel` with an EMA, Keras's `use_ema`).
    ///
    /// ```
    /// # use kiln::prelude::*;
    /// # kiln::model! { struct Net { input: [4], out: Dense(2) } }
    /// # let model = Net::new(&Cpu::new()?, 8, 1)?;
    /// let trainer = Trainer::new(model, Loss::mean_squared_error(), Optimizer::new(Adam::default()))?
    ///     .ema(Ema::new(0.999));
    /// assert!(trainer.average().is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn ema(mut self, ema: Ema<B>) -> Self {
        self.ema = Some(ema);
        self
    }

    /// The moving average of the weights, if the trainer keeps one (to save it with
    /// [`checkpoint::save_with_ema`](crate::checkpoint::save_with_ema)).
    pub fn average(&self) -> Option<&Ema<B>> {
        self.ema.as_ref()
    }

    /// Runs `f` with the averaged weights in the model, when there is an average that
    /// has seen a step, and puts the trained weights back whatever `f` returns.
    fn with_average<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let Some(mut ema) = self.ema.take().filter(|e| e.updates() > 0) else {
            return f(self);
        };
        if let Err(e) = ema.swap(&mut self.model) {
            self.ema = Some(ema);
            return Err(e.into());
        }
        let result = f(self);
        let back = ema.swap(&mut self.model);
        self.ema = Some(ema);
        let value = result?;
        back?;
        Ok(value)
    }

    /// The same with `metrics` reported after the loss.
    #[must_use]
    pub fn metrics(mut self, metrics: impl IntoIterator<Item = Metric>) -> Self {
        self.metrics = metrics.into_iter().collect();
        self
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The model, mutably.
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &Optimizer<B> {
        &self.optimizer
    }

    /// The optimizer, mutably (to restore its state, say).
    pub fn optimizer_mut(&mut self) -> &mut Optimizer<B> {
        &mut self.optimizer
    }

    /// The model and the optimizer together, mutably.
    pub fn parts_mut(&mut self) -> (&mut M, &mut Optimizer<B>) {
        (&mut self.model, &mut self.optimizer)
    }

    /// Gives the model back.
    pub fn into_model(self) -> M {
        self.model
    }

    fn metric_set(&self) -> Result<MetricSet<B>> {
        let kind = self.criterion.loss().kind();
        MetricSet::new(
            &self.backend,
            &self.metrics,
            M::OUTPUT_SHAPE.size(),
            kind.sparse_targets(),
            self.criterion.loss().is_from_logits(),
        )
    }

    fn batch_options(
        &self,
        batch_size: usize,
        pipeline: &Pipeline,
        workers: usize,
    ) -> Result<BatchOptions> {
        if batch_size == 0 || batch_size > self.model.max_batch() {
            return Err(Error::Config(format!(
                "batch size {batch_size} must lie in 1..={} (the largest batch {} was built for)",
                self.model.max_batch(),
                M::NAME
            )));
        }
        Ok(BatchOptions::new(batch_size)
            .shuffle(false)
            .workers(workers)
            .pipeline(pipeline.clone()))
    }

    /// The batches of an evaluation or a prediction of `data` under `options`.
    fn eval_batches(
        &self,
        data: SharedData,
        options: &EvaluateOptions,
    ) -> Result<EvalBatches<M::Output, B>> {
        // A batch larger than the model's is an error, as in `fit`: capping it quietly
        // would hide a mistyped size.
        let batches = self.batch_options(options.batch_size, &options.pipeline, 1)?;
        EvalBatches::new::<M>(data, batches, options.tta, &self.backend)
    }

    /// Loss and metrics over every batch of `batches`, in [`Mode::Eval`], from the
    /// mean over the views of test-time augmentation when there are several.
    fn run_eval(
        &mut self,
        batches: &mut EvalBatches<M::Output, B>,
        metrics: &mut MetricSet<B>,
    ) -> Result<Evaluation> {
        metrics.reset(&self.backend)?;
        let (mut loss_sum, mut samples) = (0.0f64, 0usize);
        let Self {
            model,
            criterion,
            backend,
            reducer,
            ..
        } = self;
        let (plain, mut mirrored) = batches.epochs();
        for batch in plain.epoch(0) {
            let batch = batch?;
            let n = batch.len();
            let view;
            let output = match mirrored.as_mut() {
                None => model.forward_host(batch.inputs(), Mode::Eval)?,
                Some(m) => {
                    view = m.next_for(&batch)?;
                    let inputs = [batch.inputs(), view.inputs()];
                    m.buffers.mean(model, backend, inputs, n)?
                }
            };
            let loss = criterion.compute(&output, targets(&batch), None)?;
            metrics.update(backend, n, output.buffer(), criterion.target_buffer())?;
            loss_sum += f64::from(loss) * n as f64;
            samples += n;
        }
        if let Some(reducer) = reducer {
            reducer.reduce_totals(backend, &mut loss_sum, &mut samples, metrics, None)?;
        }
        let mut values = vec![("loss".to_string(), loss_sum / samples.max(1) as f64)];
        metrics.values(backend, &mut values)?;
        Ok(Evaluation {
            values,
            confusion: metrics.confusion(backend)?,
            samples,
        })
    }

    /// The loss and every metric over `data` (no gradients, dropout off), in batches
    /// of `batch_size` (at most the model's `max_batch`, else an error) preprocessed by
    /// `pipeline`:
    /// [`Trainer::evaluate_with`] without test-time augmentation.
    pub fn evaluate(
        &mut self,
        data: impl Dataset + 'static,
        batch_size: usize,
        pipeline: &Pipeline,
    ) -> Result<Evaluation> {
        let options = EvaluateOptions::new(batch_size).pipeline(pipeline.clone());
        self.evaluate_with(data, &options)
    }

    /// The loss and every metric over `data` (no gradients, dropout off) under
    /// `options`; with [`Tta::Mirror`], computed from the mean of the outputs for each
    /// image and its mirror image (an example at [`EvaluateOptions`]).
    pub fn evaluate_with(
        &mut self,
        data: impl Dataset + 'static,
        options: &EvaluateOptions,
    ) -> Result<Evaluation> {
        let data: SharedData = Arc::new(data);
        check_shape::<B, M>(&*data, "evaluation")?;
        let mut batches = self.eval_batches(data, options)?;
        let mut metrics = self.metric_set()?;
        self.with_average(|t| t.run_eval(&mut batches, &mut metrics))
    }

    /// The model's outputs for every sample of `data`, in order (`len x output
    /// size` values; dropout off), in batches of `batch_size` (at most the model's
    /// `max_batch`, else an error) preprocessed by `pipeline`: [`Trainer::predict_with`] without
    /// test-time augmentation.
    pub fn predict(
        &mut self,
        data: impl Dataset + 'static,
        batch_size: usize,
        pipeline: &Pipeline,
    ) -> Result<Vec<f32>> {
        let options = EvaluateOptions::new(batch_size).pipeline(pipeline.clone());
        self.predict_with(data, &options)
    }

    /// The model's outputs for every sample of `data`, in order (`len x output
    /// size` values; dropout off), under `options`; with [`Tta::Mirror`], the mean of
    /// the outputs for each image and its mirror image.
    pub fn predict_with(
        &mut self,
        data: impl Dataset + 'static,
        options: &EvaluateOptions,
    ) -> Result<Vec<f32>> {
        let data: SharedData = Arc::new(data);
        check_shape::<B, M>(&*data, "prediction")?;
        let mut batches = self.eval_batches(data, options)?;
        self.with_average(|t| t.run_predict(&mut batches))
    }

    /// The outputs for every batch of `batches`, in order.
    fn run_predict(&mut self, batches: &mut EvalBatches<M::Output, B>) -> Result<Vec<f32>> {
        let out_size = M::OUTPUT_SHAPE.size();
        let mut outputs = vec![0.0f32; batches.plain.data().len() * out_size];
        let (plain, mut mirrored) = batches.epochs();
        let mut at = 0;
        for batch in plain.epoch(0) {
            let batch = batch?;
            let dst = &mut outputs[at..at + batch.len() * out_size];
            match mirrored.as_mut() {
                None => self
                    .model
                    .forward_host(batch.inputs(), Mode::Eval)?
                    .download(&self.backend, dst)?,
                Some(m) => {
                    let view = m.next_for(&batch)?;
                    let inputs = [batch.inputs(), view.inputs()];
                    m.buffers
                        .mean_into(&mut self.model, &self.backend, inputs, dst)?;
                }
            }
            at += dst.len();
        }
        Ok(outputs)
    }

    /// Trains on `data` for `options.epochs` epochs and returns every epoch's figures
    /// (Keras's `fit`).
    pub fn fit(
        &mut self,
        data: impl Dataset + 'static,
        mut options: FitOptions<B, M>,
    ) -> Result<History> {
        let data: SharedData = Arc::new(data);
        check_shape::<B, M>(&*data, "training")?;
        if options.validation_freq == 0 {
            return Err(Error::Config(
                "validation_freq must be at least 1 (validate every that many epochs)".into(),
            ));
        }
        if options.accumulate == 0 {
            return Err(Error::Config(
                "accumulate must be at least 1 (batches a gradient adds up over)".into(),
            ));
        }
        let classes = self.criterion.classes();
        check_labels(&*data, classes, "training", M::NAME)?;
        let (train, validation): (SharedData, Option<SharedData>) = match &options.validation {
            Validation::None => (data, None),
            Validation::Data(v) => {
                check_shape::<B, M>(&**v, "validation")?;
                check_labels(&**v, classes, "validation", M::NAME)?;
                (data, Some(Arc::clone(v)))
            }
            Validation::Split(fraction) => {
                if !(*fraction > 0.0 && *fraction < 1.0) {
                    return Err(Error::Config(format!(
                        "validation_split must lie in (0, 1), got {fraction}"
                    )));
                }
                let n = data.len();
                let held = ((n as f64) * fraction).round() as usize;
                let cut = n - held.clamp(1, n.saturating_sub(1).max(1));
                let train = Subset::new(Arc::clone(&data), (0..cut).collect())?;
                let val = Subset::new(data, (cut..n).collect())?;
                (Arc::new(train), Some(Arc::new(val)))
            }
        };
        // A data-parallel run (ranks agree on the model and the run, take rank 0's
        // weights, and each batch and validate their share); a failed run leaves no
        // reducer for a later `evaluate`, as the next `fit` clears it.
        self.reducer = None;
        let world = options.distributed.clone().filter(|w| w.size() > 1);
        let validation = match (&world, validation) {
            (Some(world), Some(v)) => Some(distributed::shard(v, world)?),
            (_, v) => v,
        };
        if let Some(world) = &world {
            let facts = [
                ("the training set's size", train.len() as u64),
                ("the batch size", options.batch_size as u64),
                ("the epochs", options.epochs as u64),
                ("the seed", options.seed),
            ];
            self.reducer = Some(Reducer::new(world.clone(), &mut self.model, &facts)?);
            if !world.is_root() {
                options.verbose = Verbosity::Silent;
                options.callbacks.retain(|c| !c.root_only());
            }
        }
        let shard = world.as_ref().map_or((0, 1), |w| (w.rank(), w.size()));
        let train_options = self
            .batch_options(options.batch_size, &options.pipeline, options.workers)?
            .shard(shard.0, shard.1)
            .shuffle(options.shuffle)
            .seed(options.seed)
            .augment(options.augment);
        let samples_per_epoch = train.len();
        let train_data = Arc::clone(&train);
        let mut batcher = Batcher::new(train, train_options)?;
        let mut val_batches = match validation {
            Some(v) => Some(EvalBatches::new::<M>(
                v,
                self.batch_options(options.batch_size, &options.pipeline, options.workers)?,
                options.validation_tta,
                &self.backend,
            )?),
            None => None,
        };
        let mut metrics = self.metric_set()?;
        let mut val_metrics = self.metric_set()?;
        let steps = batcher.batches();
        let batched = batcher.samples();
        let mut progress = Progress::new(options.verbose, options.epochs);
        let mut history = History::default();
        let mut stop = false;
        let mut callbacks = std::mem::take(&mut options.callbacks);
        macro_rules! each_callback {
            (|$cb:ident, $ctx:ident| $body:expr) => {
                for $cb in callbacks.iter_mut() {
                    let mut $ctx = Context {
                        model: &mut self.model,
                        optimizer: &mut self.optimizer,
                        history: &history,
                        data: &*train_data,
                        batch_size: options.batch_size,
                        steps,
                        stop: &mut stop,
                    };
                    $body?;
                }
            };
        }
        each_callback!(|cb, ctx| cb.on_train_begin(&mut ctx));
        let mut running: Vec<(String, f64)> = Vec::new();
        for epoch in options.initial_epoch..options.epochs {
            if stop {
                break;
            }
            each_callback!(|cb, ctx| cb.on_epoch_begin(epoch, &mut ctx));
            let started = Instant::now();
            progress.epoch_begin(epoch, steps);
            metrics.reset(&self.backend)?;
            let (mut loss_sum, mut seen) = (0.0f64, 0usize);
            for (step, batch) in batcher.epoch(epoch as u64).enumerate() {
                let batch = batch?;
                let n = batch.len();
                let part = Part::of(step, steps, options.accumulate, options.batch_size, batched);
                let loss = self
                    .train_step(
                        &batch,
                        &mut metrics,
                        (epoch, step, part),
                        options.terminate_on_nan,
                    )
                    .map_err(|e| with_origin(e, &*train_data))?;
                loss_sum += f64::from(loss) * n as f64;
                seen += n;
                if progress.wants_refresh() {
                    running.clear();
                    running.push(("loss".into(), loss_sum / seen as f64));
                    metrics.values(&self.backend, &mut running)?;
                    let rate = seen as f64 / started.elapsed().as_secs_f64();
                    progress.batch(Some((&running, rate)));
                } else {
                    progress.batch(None);
                }
                each_callback!(|cb, ctx| cb.on_batch_end(step, loss, &mut ctx));
            }
            let train_seconds = started.elapsed().as_secs_f64();
            if let Some(reducer) = &self.reducer {
                let stop = Some(&mut stop);
                reducer.reduce_totals(
                    &self.backend,
                    &mut loss_sum,
                    &mut seen,
                    &mut metrics,
                    stop,
                )?;
            }
            let mut values = vec![("loss".to_string(), loss_sum / seen.max(1) as f64)];
            metrics.values(&self.backend, &mut values)?;
            let validates =
                (epoch + 1) % options.validation_freq == 0 || epoch + 1 == options.epochs;
            if let Some(vb) = val_batches.as_mut().filter(|_| validates) {
                let evaluation = self.with_average(|t| t.run_eval(vb, &mut val_metrics))?;
                values.extend(
                    evaluation
                        .values
                        .into_iter()
                        .map(|(n, v)| (format!("val_{n}"), v)),
                );
            }
            let log = EpochLog {
                epoch,
                values,
                learning_rate: self.optimizer.learning_rate(),
                seconds: started.elapsed().as_secs_f64(),
            };
            progress.epoch_end(&log, steps, samples_per_epoch as f64 / train_seconds);
            history.epochs.push(log.clone());
            each_callback!(|cb, ctx| cb.on_epoch_end(&log, &mut ctx));
        }
        each_callback!(|cb, ctx| cb.on_train_end(&mut ctx));
        options.callbacks = callbacks;
        self.reducer = None;
        Ok(history)
    }

    /// One batch: forward, loss, metrics, backward, and the update after the last
    /// batch of `part`.
    ///
    /// Nothing waits for the backend until the loss is read at the end: on a GPU the
    /// whole step is queued at once. A non-finite model output, and with
    /// `terminate_on_nan` a non-finite gradient, fails the step without changing a
    /// weight: the CPU finds them before the update, the GPU skips the update on the
    /// device and reports them with the loss.
    fn train_step(
        &mut self,
        batch: &kiln_data::Batch,
        metrics: &mut MetricSet<B>,
        (epoch, step, part): (usize, usize, Part),
        terminate_on_nan: bool,
    ) -> Result<f32> {
        let Self {
            model,
            criterion,
            optimizer,
            ema,
            backend,
            reducer,
            ..
        } = self;
        let fail =
            |model: &M, e: Error| step_failure(model, e, batch, (epoch, step), terminate_on_nan);
        let output = model.forward_host(batch.inputs(), Mode::Train)?;
        if let Err(e) = criterion.launch_part(&output, targets(batch), None, part.samples) {
            return Err(fail(model, e.into()));
        }
        metrics.update(
            backend,
            batch.len(),
            output.buffer(),
            criterion.target_buffer(),
        )?;
        // The backward pass adds to the parameter gradients: zeroed once an update,
        // they sum the update's micro-batches.
        if part.first {
            model.zero_grad()?;
        }
        model.backward(criterion.gradient(), criterion.grad_at())?;
        // Data-parallel, at an update's last micro-batch: every rank's gradients (its
        // mean over the update's samples) become the mean over all ranks' samples
        // before anything reads them, so that all ranks check and step alike.
        if let Some(reducer) = reducer.as_mut().filter(|_| part.last) {
            reducer.reduce(model, part.samples)?;
        }
        if terminate_on_nan {
            // The gradients go to the backend in groups (a GPU checks a group in one
            // launch); a check's error stops the visit from checking more.
            let mut group = Group::<(&B::Buffer, usize), GRADIENT_GROUP>::default();
            let mut checked = Ok(());
            model.parameters(&mut |p| {
                if checked.is_ok() {
                    let grad = (p.grad, p.shape.size());
                    checked = group.push(grad, |g| backend.check_finite_many(g));
                }
                Ok(())
            })?;
            if checked.is_ok() {
                checked = group.flush(|g| backend.check_finite_many(g));
            }
            if let Err(e) = checked {
                return Err(fail(model, e.into()));
            }
        }
        if part.last {
            optimizer.step(model)?;
        }
        let loss = match criterion.value() {
            Ok(loss) => loss,
            Err(e) => {
                return Err(fail(model, e.into()));
            }
        };
        if terminate_on_nan && !loss.is_finite() {
            return Err(Error::NonFinite {
                epoch,
                step,
                detail: format!("the loss is {loss}"),
            });
        }
        // After the loss is read: a step that failed on a GPU changed no weight, and
        // must not move the average either.
        if let Some(ema) = ema.as_mut().filter(|_| part.last) {
            ema.update(model)?;
        }
        Ok(loss)
    }
}
