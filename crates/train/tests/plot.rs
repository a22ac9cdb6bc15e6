//! `plot_history` and `plot_runs` on files: valid PNGs, atomic replacement, and clear
//! errors that name the path.
#![cfg(feature = "plots")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use kiln_train::{EpochLog, Error, History, plot_history, plot_runs};

/// A history shaped like a real run: loss falling, accuracy rising, validation a little
/// worse and noisier. `speed` changes the shape so that runs differ.
fn history(epochs: usize, speed: f64) -> History {
    let epochs = (0..epochs)
        .map(|epoch| {
            let t = epoch as f64;
            let wiggle = 0.03 * (t * 1.7).sin();
            let loss = 0.4 + 1.9 * (-speed * t).exp();
            let accuracy = 0.9 - 0.8 * (-speed * t).exp();
            EpochLog {
                epoch,
                values: vec![
                    ("loss".to_owned(), loss),
                    ("accuracy".to_owned(), accuracy),
                    ("val_loss".to_owned(), loss + 0.1 + wiggle + 0.01 * t),
                    ("val_accuracy".to_owned(), accuracy - 0.05 + wiggle),
                ],
                learning_rate: 1e-3,
                seconds: 1.0,
            }
        })
        .collect();
    History { epochs }
}

/// A fresh, empty directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-train-plot-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The width and height in a PNG's IHDR chunk, after checking the signature, the
/// chunk's place and the closing IEND chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.len() > 1000,
        "{} is only {} bytes",
        path.display(),
        bytes.len()
    );
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG signature");
    assert_eq!(&bytes[8..12], &13u32.to_be_bytes(), "IHDR length");
    assert_eq!(&bytes[12..16], b"IHDR");
    assert_eq!(
        &bytes[bytes.len() - 8..bytes.len() - 4],
        b"IEND",
        "truncated PNG"
    );
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (width, height)
}

/// The names of the files in `dir`.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn assert_plot_error(result: kiln_train::Result<()>, path: &Path, words: &[&str]) {
    match result {
        Err(Error::Plot { path: p, detail }) => {
            assert_eq!(p, path);
            for word in words {
                assert!(detail.contains(word), "`{detail}` lacks `{word}`");
            }
        }
        other => panic!("expected a plot error, got {other:?}"),
    }
}

#[test]
fn history_plot_is_a_png_with_a_panel_per_quantity() {
    let dir = scratch("history");
    let path = dir.join("history.png");
    plot_history(&history(10, 0.3), &path).unwrap();
    // Two panels (loss, accuracy) side by side.
    let (width, height) = png_size(&path);
    assert!(width >= 1000 && height >= 300, "{width}x{height}");
    assert!(width > height, "{width}x{height}");
    // Nothing but the plot is left behind.
    assert_eq!(files(&dir), ["history.png"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn history_plot_replaces_an_existing_file() {
    let dir = scratch("replace");
    let path = dir.join("curves.PNG");
    std::fs::write(&path, b"old").unwrap();
    plot_history(&history(3, 0.3), &path).unwrap();
    png_size(&path);
    assert_eq!(files(&dir), ["curves.PNG"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn runs_plot_is_a_png() {
    let dir = scratch("runs");
    let path = dir.join("val_loss.png");
    let (a, b, c) = (history(10, 0.2), history(10, 0.4), history(6, 0.8));
    let runs = [
        ("constant + adam", &a),
        ("cosine + adam", &b),
        ("step + sgd", &c),
    ];
    plot_runs(&runs, "val_loss", &path).unwrap();
    let (width, height) = png_size(&path);
    assert!(width >= 900 && height >= 500, "{width}x{height}");
    assert_eq!(files(&dir), ["val_loss.png"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn empty_history_is_an_error_and_leaves_the_old_file() {
    let dir = scratch("empty");
    let path = dir.join("history.png");
    std::fs::write(&path, b"old").unwrap();
    let result = plot_history(&History::default(), &path);
    assert_plot_error(result, &path, &["empty"]);
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert_eq!(files(&dir), ["history.png"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn history_without_values_is_an_error() {
    let dir = scratch("novalues");
    let path = dir.join("history.png");
    let mut h = history(2, 0.3);
    h.epochs.iter_mut().for_each(|e| e.values.clear());
    assert_plot_error(plot_history(&h, &path), &path, &["no values"]);
    assert!(files(&dir).is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_metric_names_the_run_and_what_it_logged() {
    let dir = scratch("metric");
    let path = dir.join("runs.png");
    let a = history(4, 0.3);
    let mut b = history(4, 0.3);
    b.epochs
        .iter_mut()
        .for_each(|e| e.values.retain(|(n, _)| !n.starts_with("val_")));
    let result = plot_runs(&[("a", &a), ("no validation", &b)], "val_loss", &path);
    assert_plot_error(
        result,
        &path,
        &["`no validation`", "`val_loss`", "loss, accuracy"],
    );
    assert!(files(&dir).is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn runs_errors() {
    let dir = scratch("runserrors");
    let path = dir.join("runs.png");
    assert_plot_error(plot_runs(&[], "loss", &path), &path, &["no run"]);
    let empty = History::default();
    assert_plot_error(
        plot_runs(&[("fresh", &empty)], "loss", &path),
        &path,
        &["`fresh`"],
    );
    let one = history(2, 0.3);
    let many = vec![("same", &one); 101];
    assert_plot_error(plot_runs(&many, "loss", &path), &path, &["101 runs"]);
    assert!(files(&dir).is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn path_must_end_in_png() {
    let dir = scratch("extension");
    for name in ["history.jpg", "history"] {
        let path = dir.join(name);
        assert_plot_error(plot_history(&history(3, 0.3), &path), &path, &[".png"]);
    }
    assert!(files(&dir).is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unwritable_path_is_an_io_error_naming_it() {
    let dir = scratch("unwritable");
    // A directory that does not exist.
    let path = dir.join("missing").join("history.png");
    match plot_history(&history(3, 0.3), &path) {
        Err(Error::Io { path: p, source }) => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    // A directory where the file should go: the rename fails, the temporary file goes.
    let path = dir.join("taken.png");
    std::fs::create_dir(&path).unwrap();
    let err = plot_history(&history(3, 0.3), &path).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("taken.png"), "{err}");
    assert_eq!(files(&dir), ["taken.png"]);
    std::fs::remove_dir_all(dir).unwrap();
}
