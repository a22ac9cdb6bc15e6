//! [`TensorBoard`]: training logged as TensorBoard's event files (Keras's
//! `TensorBoard` callback, PyTorch's `SummaryWriter`).

mod event;
mod proto;

use std::path::{Path, PathBuf};
use std::time::Instant;

use kiln_data::{Dataset, Input};
use kiln_kernels::Backend;
use kiln_nn::Model;

use crate::callbacks::{Callback, Context};
use crate::{EpochLog, Error, Result};
use event::{EventWriter, Failure};

/// Writes what `fit` does as TensorBoard's event files, to watch with
/// `tensorboard --logdir LOG_DIR`.
///
/// Each `fit` gets a run folder of its own under `log_dir` (named after the time it
/// started, or [`TensorBoard::run_name`]), with `train` and `validation` subfolders
/// as Keras writes them:
/// - every epoch: `epoch_loss` and `epoch_<metric>` (the validation values in
///   `validation`, under the same names), `epoch_learning_rate` and
///   `epoch_images_per_second`;
/// - every batch, with [`TensorBoard::batch_scalars`]: `batch_loss`,
///   `batch_learning_rate` and `batch_images_per_second`, the step counted over the
///   run;
/// - every [`TensorBoard::histogram_freq`] epochs: a histogram of every weight
///   (`conv1/weight`), of its gradient in the epoch's last batch
///   (`conv1/weight/gradient`) and of the saved state (`bn/running_mean`);
/// - at the start: the model's layer table as text (`layers`), and the first few
///   training images (`inputs/0`, ...; [`TensorBoard::images`]).
///
/// A log folder that cannot be created stops `fit` before it trains, with the folder
/// in the error. A write that fails later (a full disk) stops the logging, not the
/// training: a warning says which file and why, and `fit` goes on.
///
/// ```no_run
/// # use kiln::prelude::*;
/// use kiln::train::TensorBoard;
/// # fn f(options: FitOptions<Cpu, kiln_fake::Net>) -> FitOptions<Cpu, kiln_fake::Net> {
/// options.callback(TensorBoard::new("logs").histogram_freq(1).batch_scalars(true))
/// # }
/// # mod kiln_fake { kiln::model! { pub struct Net { input: [4], out: Dense(2) } } }
/// ```
#[derive(Debug)]
pub struct TensorBoard {
    log_dir: PathBuf,
    run_name: Option<String>,
    batch_scalars: bool,
    histogram_freq: usize,
    images: usize,
    run: Option<Run>,
    /// Why logging stopped during the last `fit`, if it did (also printed).
    stopped: Option<String>,
}

/// The files of one `fit`.
struct Run {
    dir: PathBuf,
    train: EventWriter,
    validation: Option<EventWriter>,
    epoch: usize,
    epoch_started: Instant,
    last_batch: Instant,
    /// When the epoch's last batch ended: its training time, without validation.
    train_seconds: f64,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl TensorBoard {
    /// Logs under `log_dir`: every epoch's scalars, histograms every epoch, the
    /// layer table and three input images.
    pub fn new(log_dir: impl Into<PathBuf>) -> Self {
        Self {
            log_dir: log_dir.into(),
            run_name: None,
            batch_scalars: false,
            histogram_freq: 1,
            images: 3,
            run: None,
            stopped: None,
        }
    }

    /// Names the run folder (else the UTC time `fit` started, `20250102-130405`); a
    /// folder of that name already there gets `-2`, `-3`, ... after it.
    #[must_use]
    pub fn run_name(mut self, name: impl Into<String>) -> Self {
        self.run_name = Some(name.into());
        self
    }

    /// Logs the loss, learning rate and images/s of every batch too (Keras's
    /// `update_freq="batch"`).
    #[must_use]
    pub fn batch_scalars(mut self, on: bool) -> Self {
        self.batch_scalars = on;
        self
    }

    /// Writes weight and gradient histograms every `epochs` epochs (0: never).
    #[must_use]
    pub fn histogram_freq(mut self, epochs: usize) -> Self {
        self.histogram_freq = epochs;
        self
    }

    /// Shows the first `count` training images (0: none; only for data sets of
    /// images with 1, 3 or 4 channels).
    #[must_use]
    pub fn images(mut self, count: usize) -> Self {
        self.images = count;
        self
    }

    /// A folder under `log_dir` for this run, created with its `train` subfolder.
    fn create_run_dir(&self) -> Result<PathBuf> {
        let base = self.run_name.clone().unwrap_or_else(utc_stamp);
        let error = |path: &Path, source| Error::TensorBoard {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(&self.log_dir).map_err(|e| error(&self.log_dir, e))?;
        let mut n = 1;
        loop {
            let name = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let dir = self.log_dir.join(name);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    let train = dir.join("train");
                    std::fs::create_dir(&train).map_err(|e| error(&train, e))?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(error(&dir, e)),
            }
        }
    }

    /// Runs `write` on the run's files unless logging has stopped; a failure stops
    /// it, with a warning that says why.
    fn write(&mut self, write: impl FnOnce(&mut Run) -> std::result::Result<(), Failure>) {
        let Some(run) = self.run.as_mut() else {
            return;
        };
        if let Err(failure) = write(run) {
            let message = format!(
                "TensorBoard logging stopped at epoch {}: {failure}; training goes on",
                run.epoch + 1
            );
            eprintln!("warning: {message}");
            self.stopped = Some(message);
            self.run = None;
        }
    }

    /// The epoch's scalars: training values in `train`, validation values (`val_`
    /// stripped) in `validation`.
    fn epoch_scalars(&mut self, log: &EpochLog, samples: usize) {
        self.write(|run| {
            let images_per_second = samples as f64 / run.train_seconds.max(1e-9);
            let mut train = Vec::new();
            let mut validation = Vec::new();
            for (name, value) in &log.values {
                match name.strip_prefix("val_") {
                    Some(name) => validation.push(event::scalar(&format!("epoch_{name}"), *value)),
                    None => train.push(event::scalar(&format!("epoch_{name}"), *value)),
                }
            }
            train.push(event::scalar("epoch_learning_rate", log.learning_rate));
            train.push(event::scalar("epoch_images_per_second", images_per_second));
            run.train.summary(log.epoch, train)?;
            if !validation.is_empty() {
                let writer = match run.validation.as_mut() {
                    Some(w) => w,
                    None => {
                        let folder = run.dir.join("validation");
                        std::fs::create_dir_all(&folder).map_err(|source| Failure {
                            path: folder.clone(),
                            source,
                        })?;
                        run.validation.insert(EventWriter::create(&folder)?)
                    }
                };
                writer.summary(log.epoch, validation)?;
            }
            Ok(())
        });
    }

    fn flush(&mut self) {
        self.write(|run| {
            run.train.flush()?;
            match run.validation.as_mut() {
                Some(w) => w.flush(),
                None => Ok(()),
            }
        });
    }
}

/// The first `count` images of `data` as PNG summaries (`inputs/0`, ...): `u8` images
/// as they are, `f32` ones stretched from their own range to 0..=255.
fn input_images(data: &dyn Dataset, count: usize) -> Result<Vec<proto::Value>> {
    let &[h, w, c] = data.shape() else {
        return Ok(Vec::new());
    };
    let mut images = Vec::new();
    for i in 0..count.min(data.len()) {
        let pixels = match data.get(i)?.input {
            Input::U8(v) => v.into_owned(),
            Input::F32(v) => {
                let (lo, hi) = v
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
                        (lo.min(x), hi.max(x))
                    });
                let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
                v.iter()
                    .map(|&x| ((x - lo) * scale).round() as u8)
                    .collect()
            }
        };
        images.extend(event::image(&format!("inputs/{i}"), (h, w, c), &pixels));
    }
    Ok(images)
}

/// `20250102-130405`: the UTC time now.
fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The layer table as Markdown: a code block, so that its columns stay aligned.
fn layer_table<B: Backend, M: Model<B>>() -> String {
    kiln_nn::summary(M::NAME, M::INPUT_SHAPE, M::LAYERS)
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect()
}

impl<B: Backend, M: Model<B>> Callback<B, M> for TensorBoard {
    fn root_only(&self) -> bool {
        true
    }

    fn on_train_begin(&mut self, ctx: &mut Context<'_, B, M>) -> Result<()> {
        self.stopped = None;
        self.run = None;
        let dir = self.create_run_dir()?;
        let train = EventWriter::create(&dir.join("train")).map_err(|f| Error::TensorBoard {
            path: f.path,
            source: f.source,
        })?;
        let now = Instant::now();
        self.run = Some(Run {
            dir,
            train,
            validation: None,
            epoch: 0,
            epoch_started: now,
            last_batch: now,
            train_seconds: 0.0,
        });
        let mut values = vec![event::text("layers", &layer_table::<B, M>())];
        values.extend(input_images(ctx.data, self.images)?);
        self.write(|run| {
            run.train.summary(0, values)?;
            run.train.flush()
        });
        Ok(())
    }

    fn on_epoch_begin(&mut self, epoch: usize, _ctx: &mut Context<'_, B, M>) -> Result<()> {
        if let Some(run) = self.run.as_mut() {
            run.epoch = epoch;
            run.epoch_started = Instant::now();
            run.last_batch = run.epoch_started;
        }
        Ok(())
    }

    fn on_batch_end(&mut self, step: usize, loss: f32, ctx: &mut Context<'_, B, M>) -> Result<()> {
        let Some(run) = self.run.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        let seconds = now.duration_since(run.last_batch).as_secs_f64();
        run.last_batch = now;
        run.train_seconds = now.duration_since(run.epoch_started).as_secs_f64();
        if !self.batch_scalars {
            return Ok(());
        }
        let samples = ctx
            .batch_size
            .min(ctx.data.len().saturating_sub(step * ctx.batch_size));
        let values = vec![
            event::scalar("batch_loss", f64::from(loss)),
            event::scalar("batch_learning_rate", ctx.optimizer.learning_rate()),
            event::scalar(
                "batch_images_per_second",
                samples as f64 / seconds.max(1e-9),
            ),
        ];
        let global = run.epoch * ctx.steps + step;
        self.write(|run| run.train.summary(global, values));
        Ok(())
    }

    fn on_epoch_end(&mut self, log: &EpochLog, ctx: &mut Context<'_, B, M>) -> Result<()> {
        if self.run.is_none() {
            return Ok(());
        }
        self.epoch_scalars(log, ctx.data.len());
        if self.histogram_freq > 0
            && log.epoch.is_multiple_of(self.histogram_freq)
            && self.run.is_some()
        {
            let backend = ctx.model.backend().clone();
            let mut values = Vec::new();
            ctx.model.parameters(&mut |p| {
                let tag = format!("{}/{}", p.layer, p.name);
                let weights = backend.to_host(p.value, p.shape.size())?;
                let grads = backend.to_host(p.grad, p.shape.size())?;
                values.push(event::histogram(&tag, &weights, 30));
                values.push(event::histogram(&format!("{tag}/gradient"), &grads, 30));
                Ok(())
            })?;
            ctx.model.state(&mut |s| {
                let state = backend.to_host(s.value, s.shape.size())?;
                values.push(event::histogram(
                    &format!("{}/{}", s.layer, s.name),
                    &state,
                    30,
                ));
                Ok(())
            })?;
            self.write(|run| run.train.summary(log.epoch, values));
        }
        self.flush();
        Ok(())
    }

    fn on_train_end(&mut self, _ctx: &mut Context<'_, B, M>) -> Result<()> {
        self.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
