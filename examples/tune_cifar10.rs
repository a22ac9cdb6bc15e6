//! Tuning the seed CNN on CIFAR-10: the learning-rate range test, then a search over
//! the learning rate, the batch size, a dropout rate and the first convolution's
//! width, judged on a validation split of the training set (never the test set);
//! then the best configuration and the seed's defaults trained alike and tested.
//!
//! ```text
//! cargo run --release --example tune_cifar10 -- [--trials N] [--search-train N]
//!     [--search-epochs N] [--validation N] [--workers N] [--epochs N] [--study DIR]
//!     [--data DIR]
//! ```
//!
//! The budget by default: 30 trials (TPE after 10 random ones; median pruning from
//! the first epoch once 5 trials have completed) of at most 4 epochs on 10,000
//! training images, each validated on the same 5,000 images held out of the training
//! set; then 10 epochs on the other 45,000 for the best configuration and for the
//! seed's (Adam at 1e-3, batches of 64, no dropout, 32 filters first), each tested on
//! the 10,000 test images. 13 minutes on the 2-vCPU host of docs/EXAMPLES.md.
//! Short trials favour what learns fastest: `--trials 20 --search-train 45000
//! --search-epochs 10` judges them at the final training's horizon (46 minutes here),
//! and its best beat the seed's defaults where the default budget's did not.
//!
//! The study's state is in `--study` (default
//! `target/kiln-examples/tune_cifar10_study`): run the program again after a crash
//! and it resumes, keeping the finished trials. `--workers N` runs the search in `N`
//! processes sharing that folder, each with its share of the cores.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kiln::data::{InMemory, Subset, cifar};
use kiln::prelude::*;
use kiln::train::tune::study::{
    Direction, MedianPruner, PruningCallback, Scale, Study, Tpe, TrialState, Workers, worker_index,
};
use kiln::train::tune::{LrFindOptions, Suggestion};
use kiln::train::{Evaluation, SharedData};
use kiln_examples::args::{Args, Device};
use kiln_examples::device::{OnBackend, run_on};
use kiln_examples::report::{Json, output_dir, plot_path};

/// The seed CNN with `$w`, `2 $w` and `4 $w` filters, and optionally a dropout layer
/// before its classifier: the family the search picks from, declared once.
macro_rules! seed_cnn {
    ($name:ident, $w:literal, $w2:literal, $w4:literal) => {
        seed_cnn!($name, $w, $w2, $w4, {});
    };
    ($name:ident, $w:literal, $w2:literal, $w4:literal, $dropout:literal) => {
        seed_cnn!($name, $w, $w2, $w4, { drop: Dropout($dropout), });
    };
    ($name:ident, $w:literal, $w2:literal, $w4:literal, { $($drop:tt)* }) => {
        kiln::model! {
            /// A member of the seed CNN's family.
            pub struct $name {
                input: [32, 32, 3],
                conv1: Conv2d($w, 3, relu),
                pool1: MaxPool2d(2),
                conv2: Conv2d($w2, 3, relu),
                pool2: MaxPool2d(2),
                conv3: Conv2d($w4, 3, relu),
                pool3: MaxPool2d(2),
                flat: Flatten,
                fc1: Dense(128, relu),
                $($drop)*
                out: Dense(10, softmax),
            }
        }
    };
}

seed_cnn!(Cnn32, 32, 64, 128);
seed_cnn!(Cnn32Drop25, 32, 64, 128, 0.25);
seed_cnn!(Cnn32Drop50, 32, 64, 128, 0.5);
seed_cnn!(Cnn48, 48, 96, 192);
seed_cnn!(Cnn48Drop25, 48, 96, 192, 0.25);
seed_cnn!(Cnn48Drop50, 48, 96, 192, 0.5);

const DROPOUTS: [f64; 3] = [0.0, 0.25, 0.5];
const WIDTHS: [u32; 2] = [32, 48];
const BATCHES: [usize; 3] = [32, 64, 128];

/// The tuned settings.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Config {
    lr: f64,
    batch_size: usize,
    dropout: f64,
    width: u32,
}

impl Config {
    /// The seed program's settings.
    const SEED: Config = Config {
        lr: 1e-3,
        batch_size: 64,
        dropout: 0.0,
        width: 32,
    };

    fn json(&self) -> Json {
        Json::new()
            .number("learning_rate", self.lr, 6)
            .number("batch_size", self.batch_size as f64, 0)
            .number("dropout", self.dropout, 2)
            .number("width", f64::from(self.width), 0)
    }
}

/// Work generic over the model the configuration names.
trait WithModel<B: Backend> {
    type Output;
    fn run<M: Model<B>>(self, backend: &B) -> kiln::Result<Self::Output>;
}

/// Runs `job` with the family member of `config`'s width and dropout.
fn with_model<B: Backend, J: WithModel<B>>(
    config: &Config,
    backend: &B,
    job: J,
) -> kiln::Result<J::Output> {
    let drop = DROPOUTS.iter().position(|d| *d == config.dropout);
    match (config.width, drop) {
        (32, Some(0)) => job.run::<Cnn32<B>>(backend),
        (32, Some(1)) => job.run::<Cnn32Drop25<B>>(backend),
        (32, Some(2)) => job.run::<Cnn32Drop50<B>>(backend),
        (48, Some(0)) => job.run::<Cnn48<B>>(backend),
        (48, Some(1)) => job.run::<Cnn48Drop25<B>>(backend),
        (48, Some(2)) => job.run::<Cnn48Drop50<B>>(backend),
        _ => Err(kiln::train::Error::Config(format!("no model for {config:?}")).into()),
    }
}

/// One training run: `config` for `epochs` epochs on `train`, validated on `val`,
/// then (with `test`) tested.
struct Run {
    config: Config,
    train: SharedData,
    val: SharedData,
    test: Option<SharedData>,
    epochs: usize,
    seed: u64,
    verbose: Verbosity,
    pruning: Option<PruningCallback>,
}

/// What a run measured.
struct Measured {
    history: History,
    test: Option<Evaluation>,
}

impl<B: Backend> WithModel<B> for Run {
    type Output = Measured;

    fn run<M: Model<B>>(self, backend: &B) -> kiln::Result<Measured> {
        let pipeline = Pipeline::new().scale(1.0 / 255.0);
        let model = M::new(backend, self.config.batch_size, self.seed)?;
        let optimizer = Optimizer::new(Adam::default()).learning_rate_fixed(self.config.lr);
        let mut trainer = Trainer::new(model, Loss::sparse_categorical_crossentropy(), optimizer)?
            .metrics([Metric::Accuracy]);
        let mut options = FitOptions::new(self.epochs, self.config.batch_size)
            .seed(self.seed)
            .pipeline(pipeline.clone())
            .validation_data(Arc::clone(&self.val))
            .verbose(self.verbose);
        if let Some(pruning) = self.pruning {
            options = options.callback(pruning);
        }
        let history = trainer.fit(Arc::clone(&self.train), options)?;
        let test = match self.test {
            Some(test) => Some(trainer.evaluate(test, self.config.batch_size, &pipeline)?),
            None => None,
        };
        Ok(Measured { history, test })
    }
}

/// The range test on the seed CNN, plotted.
struct RangeTest {
    train: SharedData,
}

impl<B: Backend> WithModel<B> for RangeTest {
    type Output = kiln::train::LrFind;

    fn run<M: Model<B>>(self, backend: &B) -> kiln::Result<Self::Output> {
        let model = M::new(backend, 64, 1)?;
        let mut trainer = Trainer::new(
            model,
            Loss::sparse_categorical_crossentropy(),
            Optimizer::new(Adam::default()),
        )?;
        let options = LrFindOptions::new(64).pipeline(Pipeline::new().scale(1.0 / 255.0));
        Ok(trainer.lr_find(self.train, &options)?)
    }
}

/// The example's own flags.
#[derive(clap::Args, Debug)]
struct Budget {
    /// Trials of the search.
    #[arg(long, default_value_t = 30)]
    trials: usize,
    /// Training images of each trial (taken from the training split).
    #[arg(long, default_value_t = 10_000)]
    search_train: usize,
    /// Epochs of each trial (fewer if pruned).
    #[arg(long, default_value_t = 4)]
    search_epochs: usize,
    /// Images held out of the training set for validation.
    #[arg(long, default_value_t = 5000)]
    validation: usize,
    /// The study's folder (resumable).
    #[arg(long)]
    study: Option<PathBuf>,
    /// Processes that run the search's trials at once, sharing the cores.
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

fn main() -> std::process::ExitCode {
    kiln_examples::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (args, budget) = Args::parse_with::<Budget>(
        Args {
            epochs: 10,
            batch_size: 64,
            seed: 1,
            data: None,
            device: Device::Cpu,
        },
        true,
    )?;
    let (train, test) = match &args.data {
        Some(dir) => cifar::load_dir(dir)?,
        None => cifar::load_data()?,
    };
    run_on(
        args.device,
        Tuning {
            args,
            budget,
            train,
            test,
        },
    )
}

struct Tuning {
    args: Args,
    budget: Budget,
    train: InMemory,
    test: InMemory,
}

impl OnBackend for Tuning {
    fn run<B: Backend>(self, backend: &B) -> Result<(), Box<dyn std::error::Error>> {
        let Tuning {
            args,
            budget,
            train,
            test,
        } = self;
        // A seeded split of the training set: the last `validation` images of a
        // shuffled order validate, the rest train; the test set stays out of it.
        let split = kiln::data::split::split_dataset(
            &train,
            budget.validation as f64 / train.len() as f64,
            0.0,
            args.seed,
            true,
        )?;
        let all: SharedData = Arc::new(train);
        let fit_set: SharedData = Arc::new(Subset::new(Arc::clone(&all), split.train.clone())?);
        let val: SharedData = Arc::new(Subset::new(Arc::clone(&all), split.validation.clone())?);
        let search_n = budget.search_train.min(split.train.len());
        let search_set: SharedData = Arc::new(Subset::new(
            Arc::clone(&all),
            split.train[..search_n].to_vec(),
        )?);
        let test: SharedData = Arc::new(test);
        println!(
            "CIFAR-10: {} training, {} validation (from the training set), {} test images",
            fit_set.len(),
            val.len(),
            test.len()
        );

        // A worker process (`--workers`) runs trials of the search, and nothing else.
        let worker = worker_index();

        // 1. The learning-rate range test on the seed CNN.
        let (mut valley, mut minimum, mut steep) = (f64::NAN, f64::NAN, f64::NAN);
        if worker.is_none() {
            let found = with_model(
                &Config::SEED,
                backend,
                RangeTest {
                    train: Arc::clone(&fit_set),
                },
            )?;
            let lr_plot = plot_path("tune_cifar10_lr_find")?;
            found.plot(&lr_plot)?;
            let suggestion = |rule| found.suggestion_for(rule).unwrap_or(f64::NAN);
            valley = suggestion(Suggestion::Valley);
            minimum = suggestion(Suggestion::Minimum);
            steep = suggestion(Suggestion::Steep);
            println!(
                "lr_find (seed CNN, Adam, batch 64): valley {valley:.2e} (the default), \
                 minimum/10 {minimum:.2e}, steep {steep:.2e}; {} steps{}; plot {}",
                found.losses.len(),
                if found.diverged {
                    ", stopped on divergence"
                } else {
                    ""
                },
                lr_plot.display()
            );

            // 2. The search.
            println!(
                "search budget: {} trials of at most {} epochs on {} images, validated on {}; \
                 TPE after 10 random trials, median pruning from epoch 1 after 5 trials; {} \
                 process(es)",
                budget.trials,
                budget.search_epochs,
                search_set.len(),
                val.len(),
                budget.workers
            );
            // What a larger budget would train, against this one, in image-epochs.
            let more = 60.0 * 10.0 * 45_000.0;
            let this = (budget.trials * budget.search_epochs * search_set.len()) as f64;
            println!(
                "with more time: 60 trials of the full 10 epochs on all 45,000 training \
                 images ({:.0}x this budget's image-epochs, pruning aside), judged at the \
                 horizon the final training has; Hyperband over 1-10 epochs; the search \
                 widened to weight decay, augmentation, the other widths and a fourth \
                 block; and the best 3 configurations retrained from 3 seeds each before \
                 choosing",
                more / this.max(1.0)
            );
        }
        let dir = budget
            .study
            .clone()
            .unwrap_or_else(|| output_dir().join("tune_cifar10_study"));
        let mut study = Study::new("tune_cifar10", Direction::Maximize)
            .sampler(Tpe::new())
            .pruner(MedianPruner::new().startup_trials(5))
            .seed(args.seed)
            .storage(&dir)?;
        let objective = |trial: &mut kiln::train::tune::study::Trial| {
            let config = Config {
                lr: trial.suggest_float("learning_rate", 2e-4, 5e-3, Scale::Log)?,
                batch_size: trial.suggest_categorical("batch_size", &BATCHES)?,
                dropout: trial.suggest_categorical("dropout", &DROPOUTS)?,
                width: trial.suggest_categorical("width", &WIDTHS)?,
            };
            let started = Instant::now();
            let run = Run {
                config,
                train: Arc::clone(&search_set),
                val: Arc::clone(&val),
                test: None,
                epochs: budget.search_epochs,
                seed: args.seed,
                verbose: Verbosity::Silent,
                pruning: Some(trial.pruning("val_accuracy")),
            };
            let measured = with_model(&config, backend, run)
                .map_err(|e| kiln::train::Error::Config(e.to_string()))?;
            let last = measured.history.epochs.last();
            let accuracy = last.and_then(|e| e.get("val_accuracy")).unwrap_or(f64::NAN);
            println!(
                "{}trial {:>2}: lr {:.2e}, batch {:>3}, dropout {:.2}, width {}: val_accuracy \
                 {accuracy:.4} after {} epochs{} ({:.0} s)",
                worker.map_or(String::new(), |w| format!("[worker {w}] ")),
                trial.number(),
                config.lr,
                config.batch_size,
                config.dropout,
                config.width,
                measured.history.epochs.len(),
                if trial.pruned() { ", pruned" } else { "" },
                started.elapsed().as_secs_f64()
            );
            Ok(accuracy)
        };
        let searching = Instant::now();
        if worker.is_none() && budget.workers > 1 {
            // Copies of this program run the trials, each on its share of the cores.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let threads = (cores / budget.workers).max(1);
            let workers =
                Workers::spawn(budget.workers, std::env::args_os().skip(1), Some(threads))?;
            workers.wait()?;
            study.reload()?;
        } else {
            study.optimize(budget.trials, objective)?;
        }
        if worker.is_some() {
            return Ok(());
        }
        let search_seconds = searching.elapsed().as_secs_f64();
        let best = study.best_trial().ok_or("no trial completed")?;
        let value = |name: &str| best.param(name).unwrap_or_default();
        let best_config = Config {
            lr: value("learning_rate").parse()?,
            batch_size: value("batch_size").parse()?,
            dropout: value("dropout").parse()?,
            width: value("width").parse()?,
        };
        println!(
            "best trial {}: {best_config:?}, val_accuracy {:.4}; search {search_seconds:.0} s; \
             trials in {}",
            best.number,
            best.value.unwrap_or(f64::NAN),
            dir.join("trials.csv").display()
        );
        let objective_plot = plot_path("tune_cifar10_objective")?;
        study.plot_objective(&objective_plot)?;
        let importance_plot = plot_path("tune_cifar10_importance")?;
        study.plot_importance(&importance_plot)?;
        for (name, share) in study.importance() {
            println!("importance of {name}: {share:.2}");
        }

        // 3. The best configuration and the seed's, trained alike and tested.
        let full = |config: Config| Run {
            config,
            train: Arc::clone(&fit_set),
            val: Arc::clone(&val),
            test: Some(Arc::clone(&test)),
            epochs: args.epochs,
            seed: args.seed,
            verbose: Verbosity::Epoch,
            pruning: None,
        };
        let tested = |m: &Measured| {
            m.test
                .as_ref()
                .and_then(|e| e.get("accuracy"))
                .unwrap_or(f64::NAN)
        };
        println!("training the seed's defaults: {:?}", Config::SEED);
        let baseline = with_model(&Config::SEED, backend, full(Config::SEED))?;
        let baseline_accuracy = tested(&baseline);
        let best_accuracy = if best_config == Config::SEED {
            baseline_accuracy
        } else {
            println!("training the best configuration: {best_config:?}");
            tested(&with_model(&best_config, backend, full(best_config))?)
        };
        println!(
            "test accuracy after {} epochs: {best_accuracy:.4} tuned, {baseline_accuracy:.4} with \
             the seed's defaults",
            args.epochs
        );
        let count = |state| study.trials().iter().filter(|t| t.state == state).count() as f64;
        let result = Json::new()
            .number("baseline_test_accuracy", baseline_accuracy, 4)
            .number("best_test_accuracy", best_accuracy, 4)
            .object("best_config", best_config.json())
            .number("search_seconds", search_seconds, 1)
            .object(
                "search",
                Json::new()
                    .number("trials", study.trials().len() as f64, 0)
                    .number("complete", count(TrialState::Complete), 0)
                    .number("pruned", count(TrialState::Pruned), 0)
                    .number("epochs", budget.search_epochs as f64, 0)
                    .number("images", search_set.len() as f64, 0)
                    .number("validation_images", val.len() as f64, 0),
            )
            .object(
                "lr_find",
                Json::new()
                    .number("valley", valley, 6)
                    .number("minimum", minimum, 6)
                    .number("steep", steep, 6),
            );
        println!("result: {result}");
        Ok(())
    }
}
