//! What the tasks share: criterion's results read back as [`Row`]s, the workspace
//! they sit in, and the writing of report files.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    // xtask/ sits in the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Writes `text` to `path`, or says which file could not be written.
pub fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// One benchmark's result: criterion's median and its confidence interval, per
/// iteration.
pub struct Row {
    pub id: String,
    pub median_ns: f64,
    pub low_ns: f64,
    pub high_ns: f64,
    // Elements per iteration (images for the model, FLOPs for kernels and layers).
    pub elements: Option<f64>,
    // Bytes moved per iteration (memory-bound kernels).
    pub bytes: Option<f64>,
}

impl Row {
    pub fn per_second(&self, ns: f64) -> Option<f64> {
        self.elements.map(|e| e / (ns * 1e-9))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "median_ns": self.median_ns,
            "min_ns": self.low_ns,
            "max_ns": self.high_ns,
            "elements_per_iteration": self.elements,
            "bytes_per_iteration": self.bytes,
            "median_per_second": self.per_second(self.median_ns),
        })
    }
}

/// Reads every `<bench>/new/{benchmark,estimates}.json` that criterion wrote since
/// `since` (older results of other runs are left out).
pub fn collect(dir: &Path, since: std::time::SystemTime) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                let fresh = std::fs::metadata(path.join("estimates.json"))
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= since);
                if path.file_name().is_some_and(|n| n == "new") {
                    if !fresh {
                        continue;
                    }
                    if let Some(row) = read_row(&path)? {
                        rows.push(row);
                    }
                } else if path.file_name().is_none_or(|n| n != "report") {
                    stack.push(path);
                }
            }
        }
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rows)
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not valid JSON: {e}", path.display()))
}

fn read_row(new: &Path) -> Result<Option<Row>, String> {
    let (bench, estimates) = (new.join("benchmark.json"), new.join("estimates.json"));
    if !bench.exists() || !estimates.exists() {
        return Ok(None);
    }
    let bench = read_json(&bench)?;
    let estimates = read_json(&estimates)?;
    let median = &estimates["median"];
    let number = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    Ok(Some(Row {
        id: bench["full_id"].as_str().unwrap_or("?").to_string(),
        median_ns: number(&median["point_estimate"]),
        low_ns: number(&median["confidence_interval"]["lower_bound"]),
        high_ns: number(&median["confidence_interval"]["upper_bound"]),
        elements: bench["throughput"]["Elements"].as_f64(),
        bytes: bench["throughput"]["Bytes"].as_f64(),
    }))
}
