//! Spoken digits from raw audio: the Free Spoken Digit Dataset's WAV files turned into
//! log-mel spectrograms on the batcher's threads, augmented with a random shift, a
//! random gain and SpecAugment's masks, and classified by a small CNN that reads each
//! spectrogram as a `[frames, mels, 1]` image, or (`--model gru`) by 1-D convolutions
//! and a GRU that read it as a sequence of `[mels]` frames.
//!
//! ```text
//! cargo run --release --example spoken_digits -- [--epochs N] [--batch-size N] [--seed N] [--data PATH] [--heldout SPEAKER|none] [--model cnn|gru]
//! ```
//!
//! `--data` is the archive `fsdd-recordings.tar.gz` or a folder of the recordings;
//! without it the archive is read from the cache folder (see
//! `kiln::data::audio::fsdd::load_data`). The official split trains on repetitions 5
//! to 49 of every speaker and digit and tests on 0 to 4; then, unless `--heldout none`,
//! the same recipe trains on five speakers and tests on the sixth (`theo` by default),
//! a voice it never heard.

use std::sync::Arc;
use std::time::Instant;

use kiln::data::audio::{AudioAugment, FeatureOptions, Spectrograms, Waveforms, fsdd};
use kiln::data::{InMemory, Stats};
use kiln::prelude::*;
use kiln_examples::args::{Args, Device};
use kiln_examples::device::{OnBackend, run_on};
use kiln_examples::report::Json;

/// Frames of 256 samples (32 ms) every 128 (16 ms) over 1 s: 63 frames.
const FRAMES: usize = 63;
/// Mel bands from 0 to 4 kHz.
const MELS: usize = 40;

kiln::model! {
    /// A small CNN over log-mel spectrograms, time down the rows.
    pub struct DigitCnn {
        input: [63, 40, 1],
        conv1: Conv2d(32, 3, padding = same),
        bn1: BatchNorm(relu, momentum = 0.9),
        pool1: MaxPool2d(2),
        conv2: Conv2d(64, 3, padding = same),
        bn2: BatchNorm(relu, momentum = 0.9),
        pool2: MaxPool2d(2),
        conv3: Conv2d(128, 3, padding = same),
        bn3: BatchNorm(relu, momentum = 0.9),
        pool3: MaxPool2d(2),
        flat: Flatten,
        drop: Dropout(0.3),
        out: Dense(10, softmax),
    }
}

kiln::model! {
    /// Two convolutions over time (each frame's 40 bands are its features), then a
    /// GRU over the 31 pooled steps whose last state the classifier reads.
    pub struct DigitGru {
        input: [63, 40],
        conv1: Conv1d(64, 5, padding = same),
        bn1: BatchNorm(relu, momentum = 0.9),
        pool1: MaxPool1d(2),
        conv2: Conv1d(64, 3, padding = same),
        bn2: BatchNorm(relu, momentum = 0.9),
        gru: Gru(64),
        drop: Dropout(0.3),
        out: Dense(10, softmax),
    }
}

fn main() -> std::process::ExitCode {
    kiln_examples::main_with(run)
}

/// The features: log-mel spectrograms with librosa's defaults for 8 kHz speech.
fn features() -> FeatureOptions {
    FeatureOptions::log_mel(fsdd::SAMPLE_RATE, 256, 128, MELS)
}

/// SpecAugment (two masks each way, up to 10 frames and 8 bands), a shift of up to
/// 0.1 s and a gain of up to 6 dB.
fn augmentation() -> AudioAugment {
    AudioAugment::none()
        .shift(800)
        .gain(6.0)
        .time_mask(2, 10)
        .freq_mask(2, 8)
}

/// The example's own flag, beside the common ones.
#[derive(clap::Args, Debug)]
struct Flags {
    /// The speaker held out for the second run (`none`: no second run).
    #[arg(long, value_name = "SPEAKER", default_value = "theo")]
    heldout: String,
    /// The model: the CNN over spectrogram images, or 1-D convolutions and a GRU
    /// over their frames.
    #[arg(long, value_enum, default_value_t = Architecture::Cnn)]
    model: Architecture,
}

/// The models the example trains.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Architecture {
    /// `DigitCnn`.
    Cnn,
    /// `DigitGru`.
    Gru,
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let defaults = Args {
        epochs: 30,
        batch_size: 64,
        seed: 1,
        data: None,
        device: Device::Cpu,
    };
    let (args, Flags { heldout, model }) = Args::parse_with::<Flags>(defaults, true)?;
    let loading = Instant::now();
    let clips = match &args.data {
        Some(path) => fsdd::load(path, &fsdd::options())?,
        None => fsdd::load_data(&fsdd::options())?,
    };
    println!(
        "Free Spoken Digit Dataset: {} recordings of {} speakers, loaded in {:.1}s",
        clips.len(),
        fsdd::speakers(&clips)?.len(),
        loading.elapsed().as_secs_f64()
    );
    match model {
        Architecture::Cnn => println!("{}", <DigitCnn>::summary()),
        Architecture::Gru => println!("{}", <DigitGru>::summary()),
    }
    let (train, test) = fsdd::official_split(&clips)?;
    let heldout = match heldout.as_str() {
        "none" => None,
        speaker => Some((speaker.to_string(), fsdd::speaker_split(&clips, speaker)?)),
    };
    run_on(
        args.device,
        Program {
            args,
            train,
            test,
            heldout,
            model,
        },
    )
}

/// The training, written once for every backend.
struct Program {
    args: Args,
    train: Waveforms,
    test: Waveforms,
    heldout: Option<(String, (Waveforms, Waveforms))>,
    model: Architecture,
}

/// What one training run measured.
struct Outcome {
    evaluation: kiln::train::Evaluation,
    history: kiln::train::History,
    train_seconds: f64,
    samples: usize,
    /// Log-mel spectrograms computed per second on every core.
    spectrograms_per_second: f64,
}

impl OnBackend for Program {
    fn run<B: Backend>(self, backend: &B) -> Result<(), Box<dyn std::error::Error>> {
        let Program {
            args,
            train,
            test,
            heldout,
            model,
        } = self;
        println!("training on {}", backend.name());
        println!(
            "official split: {} training and {} test recordings",
            train.len(),
            test.len()
        );
        let official = train_and_test(backend, &args, model, train, test)?;
        let training_rate =
            kiln_examples::report::samples_per_second([&official.history], official.samples);
        println!(
            "features: {:.0} spectrograms/s on {} threads; training: {training_rate:.0} \
             samples/s",
            official.spectrograms_per_second,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        if let Some(confusion) = &official.evaluation.confusion {
            println!("test confusion matrix (rows: the digit said):\n{confusion}");
        }
        let mut result = Json::new().number(
            "test_accuracy",
            official.evaluation.get("accuracy").unwrap_or(f64::NAN),
            4,
        );
        let mut train_seconds = official.train_seconds;
        if let Some((speaker, (train, test))) = heldout {
            println!(
                "held-out speaker `{speaker}`: {} training and {} test recordings",
                train.len(),
                test.len()
            );
            let other = train_and_test(backend, &args, model, train, test)?;
            train_seconds += other.train_seconds;
            result = result.number(
                "heldout_speaker_accuracy",
                other.evaluation.get("accuracy").unwrap_or(f64::NAN),
                4,
            );
        }
        let plot = kiln_examples::report::plot_path("spoken_digits")?;
        kiln::train::plot_history(&official.history, &plot)?;
        println!("learning curves: {}", plot.display());
        let result = result
            .number(
                "test_loss",
                official.evaluation.get("loss").unwrap_or(f64::NAN),
                4,
            )
            .number("train_seconds", train_seconds, 2)
            .number("epochs", official.history.epochs.len() as f64, 0)
            .number("samples_per_second", training_rate, 0)
            .number(
                "spectrograms_per_second",
                official.spectrograms_per_second,
                0,
            );
        println!("result: {result}");
        Ok(())
    }
}

/// Trains a fresh `model` on `train` with augmentation, then evaluates it on `test`.
fn train_and_test<B: Backend>(
    backend: &B,
    args: &Args,
    model: Architecture,
    train: Waveforms,
    test: Waveforms,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    match model {
        Architecture::Cnn => train_and_test_model::<B, DigitCnn<B>>(backend, args, train, test),
        Architecture::Gru => train_and_test_model::<B, DigitGru<B>>(backend, args, train, test),
    }
}

/// [`train_and_test`] for the model type `M`, which reads spectrograms as images
/// (`[frames, mels, 1]`) or as sequences (`[frames, mels]`), as its input says.
fn train_and_test_model<B: Backend, M: Model<B>>(
    backend: &B,
    args: &Args,
    train: Waveforms,
    test: Waveforms,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let samples = train.len();
    let layout = |s: Spectrograms| {
        if M::INPUT_SHAPE.dims().len() == 2 {
            s.sequences()
        } else {
            s
        }
    };
    let train = layout(Spectrograms::new(train, features())?);
    // Evaluation sees the same spectrograms every epoch: computed once.
    let test: Arc<InMemory> = Arc::new(layout(Spectrograms::new(test, features())?).to_memory()?);
    // Standardise with the training set's plain spectrograms (per channel: one for
    // images, each band for sequences); computing them all at once times the features
    // alone.
    let computing = Instant::now();
    let plain = train.to_memory()?;
    let spectrograms_per_second = plain.len() as f64 / computing.elapsed().as_secs_f64();
    let stats = Stats::per_channel(&plain)?;
    let pipeline = Pipeline::new().standardize(&stats);
    let train = train.augment(augmentation())?;
    debug_assert_eq!(train.shape()[..2], [FRAMES, MELS]);

    let model = M::new(backend, args.batch_size, args.seed)?;
    let mut trainer = Trainer::new(
        model,
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()),
    )?
    .metrics([Metric::Accuracy]);
    let started = Instant::now();
    let history = trainer.fit(
        train,
        FitOptions::new(args.epochs, args.batch_size)
            .seed(args.seed)
            .pipeline(pipeline.clone())
            .validation_data(Arc::clone(&test)),
    )?;
    let train_seconds = started.elapsed().as_secs_f64();
    let evaluation = trainer.evaluate(test, args.batch_size, &pipeline)?;
    Ok(Outcome {
        evaluation,
        history,
        train_seconds,
        samples,
        spectrograms_per_second,
    })
}
