//! The TensorBoard callback's files, read back by TensorBoard's own reader
//! (`tests/oracle/read_tensorboard.py`, which checks every record's CRC-32C): the
//! scalars are the history's, the histograms cover every weight and gradient, the
//! images and the layer table are there; and a log folder that cannot be made is a
//! clear error before any training. Needs a Python with `tensorboard`
//! (`KILN_PYTHON`, else `python3`); the reading test says that it skipped otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::prelude::*;
use kiln_train::Error;

kiln::model! {
    pub struct Digits {
        input: [28, 28, 1],
        conv: Conv2d(4, 3, stride = 2, activation = relu),
        bn: BatchNorm,
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

const EPOCHS: usize = 3;
const BATCH: usize = 64;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-tensorboard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn trainer() -> Trainer<Cpu, Digits> {
    let model = Digits::new(&Cpu::with_threads(1).unwrap(), BATCH, 5).unwrap();
    Trainer::new(
        model,
        Loss::sparse_categorical_crossentropy(),
        Optimizer::new(Adam::default()),
    )
    .unwrap()
    .metrics([Metric::Accuracy])
}

/// Trains on 600 digits (10 batches, the last short) with 200 to validate, logging
/// to `log_dir` under `run`.
fn fit(
    trainer: &mut Trainer<Cpu, Digits>,
    tensorboard: TensorBoard,
) -> kiln_train::Result<History> {
    let (train, test) = kiln::data::mnist::embedded().unwrap();
    let train = train.select(&(0..600).collect::<Vec<_>>()).unwrap();
    let test = test.select(&(0..200).collect::<Vec<_>>()).unwrap();
    trainer.fit(
        train,
        FitOptions::new(EPOCHS, BATCH)
            .pipeline(Pipeline::new().scale(1.0 / 255.0))
            .validation_data(test)
            .verbose(Verbosity::Silent)
            .callback(tensorboard),
    )
}

/// A Python that has tensorboard: `KILN_PYTHON`, else `python3`.
fn python_with_tensorboard() -> Result<String, String> {
    let python = std::env::var("KILN_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&python)
        .args(["-c", "import tensorboard"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(python),
        Ok(_) => Err(format!(
            "{python} lacks tensorboard; set KILN_PYTHON to a Python that has it"
        )),
        Err(e) => Err(format!("cannot run {python}: {e}")),
    }
}

fn read(python: &str, run: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/read_tensorboard.py");
    let out = Command::new(python).arg(script).arg(run).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn steps_and_values(series: &serde_json::Value) -> Vec<(u64, f64)> {
    series
        .as_array()
        .unwrap_or_else(|| panic!("not a series: {series}"))
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

#[test]
fn tensorboards_reader_reads_back_every_scalar_histogram_image_and_the_layer_table() {
    let python = match python_with_tensorboard() {
        Ok(python) => python,
        Err(why) => {
            writeln!(
                std::io::stderr(),
                "skipped: TensorBoard reader check: {why}"
            )
            .unwrap();
            return;
        }
    };
    let logs = scratch("read");
    let mut trainer = trainer();
    let tensorboard = || {
        TensorBoard::new(&logs)
            .run_name("digits")
            .batch_scalars(true)
            .histogram_freq(2)
            .images(2)
    };
    let history = fit(&mut trainer, tensorboard()).unwrap();
    let logs_json = read(&python, &logs.join("digits"));
    let (train, validation) = (&logs_json["train"], &logs_json["validation"]);

    // Epoch scalars: the history's values (as f32), at steps 0, 1, 2; validation
    // values under the training names in their own folder.
    for (folder, tag, name) in [
        (train, "epoch_loss", "loss"),
        (train, "epoch_accuracy", "accuracy"),
        (validation, "epoch_loss", "val_loss"),
        (validation, "epoch_accuracy", "val_accuracy"),
    ] {
        let got = steps_and_values(&folder["scalars"][tag]);
        let want: Vec<(u64, f64)> = history
            .series(name)
            .iter()
            .enumerate()
            .map(|(e, v)| (e as u64, f64::from(*v as f32)))
            .collect();
        assert_eq!(got, want, "{tag} ({name})");
    }
    let rates = steps_and_values(&train["scalars"]["epoch_learning_rate"]);
    assert!(
        rates.iter().all(|&(_, r)| (r - 1e-3).abs() < 1e-9),
        "{rates:?}"
    );
    let speed = steps_and_values(&train["scalars"]["epoch_images_per_second"]);
    assert!(
        speed.len() == EPOCHS && speed.iter().all(|&(_, s)| s > 10.0),
        "{speed:?}"
    );
    // Batch scalars: ten batches an epoch, the step counted over the run.
    let batches = steps_and_values(&train["scalars"]["batch_loss"]);
    assert_eq!(
        batches.iter().map(|b| b.0).collect::<Vec<_>>(),
        (0..30).collect::<Vec<_>>()
    );
    assert_eq!(
        steps_and_values(&train["scalars"]["batch_images_per_second"]).len(),
        30
    );

    // Histograms at epochs 0 and 2: every weight, its gradient, the running statistics.
    let histograms = train["histograms"].as_object().unwrap();
    let mut tags: Vec<&str> = histograms.keys().map(String::as_str).collect();
    tags.sort_unstable();
    assert_eq!(
        tags,
        [
            "bn/bias",
            "bn/bias/gradient",
            "bn/running_mean",
            "bn/running_var",
            "bn/weight",
            "bn/weight/gradient",
            "conv/bias",
            "conv/bias/gradient",
            "conv/weight",
            "conv/weight/gradient",
            "out/bias",
            "out/bias/gradient",
            "out/weight",
            "out/weight/gradient"
        ]
    );
    let conv = histograms["conv/weight"].as_array().unwrap();
    assert_eq!(
        conv.iter()
            .map(|h| h[0].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 2]
    );
    assert_eq!(conv[0][1].as_f64(), Some(36.0), "3 x 3 x 1 x 4 values");
    assert!(conv[0][2].as_f64().unwrap() < 0.0 && conv[0][3].as_f64().unwrap() > 0.0);

    // Two 28 x 28 digits, and the layer table.
    for i in 0..2 {
        let image = &train["images"][format!("inputs/{i}")][0];
        assert_eq!(
            (image[1].as_u64(), image[2].as_u64()),
            (Some(28), Some(28)),
            "{image}"
        );
    }
    let table = train["texts"]["layers"][0].as_str().unwrap();
    assert!(
        table.contains("conv") && table.contains("Conv2d") && table.contains("BatchNorm"),
        "{table}"
    );

    // A second fit under the same name gets a folder of its own.
    fit(&mut trainer, tensorboard()).unwrap();
    assert!(logs.join("digits-2/train").is_dir());
    assert!(logs.join("digits-2/validation").is_dir());
    let _ = std::fs::remove_dir_all(&logs);
}

#[test]
fn a_log_folder_that_cannot_be_made_stops_fit_before_it_trains() {
    let dir = scratch("unwritable");
    // A file where the log folder's parent should be: no one, root included, can
    // make a folder inside it.
    let file = dir.join("not-a-folder");
    std::fs::write(&file, b"").unwrap();
    let mut trainer = trainer();
    let before = kiln_train::Weights::of(trainer.model()).unwrap();
    let err = fit(&mut trainer, TensorBoard::new(file.join("logs"))).unwrap_err();
    assert!(matches!(err, Error::TensorBoard { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("cannot write TensorBoard logs to ")
            && message.contains("not-a-folder/logs"),
        "{message}"
    );
    // Nothing trained, nothing lost: the weights are as they were.
    assert_eq!(kiln_train::Weights::of(trainer.model()).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}
