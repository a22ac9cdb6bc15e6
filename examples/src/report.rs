//! What an example reports: where its plots go, its training throughput, and the
//! `result: {json}` line it prints last.

use std::fmt;
use std::path::{Path, PathBuf};

use kiln::train::History;

/// `{target}/kiln-examples/{name}.png`, after creating the folder: see [`output_dir`].
pub fn plot_path(name: &str) -> std::io::Result<PathBuf> {
    let dir = output_dir();
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("{name}.png")))
}

/// Where the examples write their files: `kiln-examples` in the cargo target directory
/// the example was built in (found from the program's own path,
/// `{target}/{profile}/examples/{name}`), else in `$CARGO_TARGET_DIR`, else in
/// `./target`.
pub fn output_dir() -> PathBuf {
    let exe = std::env::current_exe().ok();
    let built_in = exe.as_deref().and_then(target_of_example);
    built_in
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("kiln-examples")
}

/// The target directory of an example binary at `{target}/{profile}/examples/{name}`.
fn target_of_example(exe: &Path) -> Option<PathBuf> {
    let examples = exe.parent()?;
    if examples.file_name()? != "examples" {
        return None;
    }
    Some(examples.parent()?.parent()?.to_path_buf())
}

/// Training samples per second over one or more runs: `samples_per_epoch` times the
/// epochs run, over the epochs' wall-clock time (their validation included).
pub fn samples_per_second<'a>(
    runs: impl IntoIterator<Item = &'a History>,
    samples_per_epoch: usize,
) -> f64 {
    let (mut epochs, mut seconds) = (0, 0.0);
    for epoch in runs.into_iter().flat_map(|h| &h.epochs) {
        epochs += 1;
        seconds += epoch.seconds;
    }
    (epochs * samples_per_epoch) as f64 / f64::max(seconds, 1e-9)
}

/// The process's peak resident memory in MiB (Linux's `VmHWM`), or `None` where the
/// system does not say.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The end of a classifier example: writes its learning curves to
/// `target/kiln-examples/{name}.png`, then prints the `result:` line with the test
/// accuracy and loss, the training time, the training samples per second and, where
/// the system tells, the peak memory.
pub fn finish_classifier(
    name: &str,
    history: &History,
    test: &kiln::train::Evaluation,
    train_seconds: f64,
    samples_per_epoch: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let plot = plot_path(name)?;
    kiln::train::plot_history(history, &plot)?;
    println!("learning curves: {}", plot.display());
    let mut result = Json::new()
        .number("test_accuracy", test.get("accuracy").unwrap_or(f64::NAN), 4)
        .number("test_loss", test.get("loss").unwrap_or(f64::NAN), 4)
        .number("train_seconds", train_seconds, 2)
        .number("epochs", history.epochs.len() as f64, 0)
        .number(
            "images_per_second",
            samples_per_second([history], samples_per_epoch),
            0,
        );
    if let Some(mib) = peak_memory_mib() {
        result = result.number("peak_memory_mib", mib, 0);
    }
    println!("result: {result}");
    Ok(())
}

/// A JSON object written field by field, in order; non-finite numbers become `null`.
#[derive(Clone, Debug, Default)]
pub struct Json {
    fields: Vec<(String, String)>,
}

impl Json {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key: value`, written with `decimals` digits after the point.
    #[must_use]
    pub fn number(mut self, key: &str, value: f64, decimals: usize) -> Self {
        let text = if value.is_finite() {
            format!("{value:.decimals$}")
        } else {
            "null".to_string()
        };
        self.fields.push((quote(key), text));
        self
    }

    /// Adds `key: "value"`.
    #[must_use]
    pub fn text(mut self, key: &str, value: &str) -> Self {
        self.fields.push((quote(key), quote(value)));
        self
    }

    /// Adds `key: {object}`.
    #[must_use]
    pub fn object(mut self, key: &str, value: Json) -> Self {
        self.fields.push((quote(key), value.to_string()));
        self
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, (key, value)) in self.fields.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{key}: {value}")?;
        }
        write!(f, "}}")
    }
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields_in_order_with_escapes_and_nulls() {
        let inner = Json::new().number("x", 1.0, 1);
        let json = Json::new()
            .number("accuracy", 0.97345, 4)
            .number("loss", f64::NAN, 4)
            .text("name", "a \"b\"")
            .object("run", inner);
        assert_eq!(
            json.to_string(),
            r#"{"accuracy": 0.9735, "loss": null, "name": "a \"b\"", "run": {"x": 1.0}}"#
        );
    }
}

#[cfg(test)]
mod output_tests {
    use super::*;

    #[test]
    fn an_examples_files_go_to_the_target_directory_it_was_built_in() {
        let exe = Path::new("/build/out/release/examples/quickstart");
        assert_eq!(target_of_example(exe), Some(PathBuf::from("/build/out")));
        assert_eq!(target_of_example(Path::new("/usr/bin/quickstart")), None);
    }
}
