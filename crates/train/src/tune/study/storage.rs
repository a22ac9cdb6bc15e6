//! A study's folder: `study.json` (the study's definition and every trial, replaced
//! atomically as checkpoints are) and `study.lock`, which one process at a time holds
//! while it reads, changes and writes the state, so that several processes can run
//! trials of one study.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::trial::{Distribution, Param};
use super::{TrialRecord, TrialState};
use crate::checkpoint::atomic::write_atomic;
use crate::{Error, Result};

/// The first line of the format: a later kiln that changes it can say so.
const FORMAT: &str = "kiln-study 1";

/// How long to wait for another process's lock before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// What tells two studies apart: a folder holds the trials of one definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Definition {
    pub(crate) name: String,
    pub(crate) direction: String,
    pub(crate) sampler: String,
    pub(crate) pruner: String,
    pub(crate) seed: u64,
}

impl Definition {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "direction": self.direction,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "seed": self.seed,
        })
    }

    fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            name: v.get("name")?.as_str()?.to_string(),
            direction: v.get("direction")?.as_str()?.to_string(),
            sampler: v.get("sampler")?.as_str()?.to_string(),
            pruner: v.get("pruner")?.as_str()?.to_string(),
            seed: v.get("seed")?.as_u64()?,
        })
    }

    /// One line for messages.
    pub(crate) fn summary(&self) -> String {
        format!(
            "`{}` ({}, sampler {}, pruner {}, seed {})",
            self.name, self.direction, self.sampler, self.pruner, self.seed
        )
    }
}

/// A finite number, or null (JSON has no NaN).
fn number(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

fn distribution_json(d: &Distribution) -> Value {
    match d {
        Distribution::Float { low, high, log } => {
            json!({"kind": "float", "low": low, "high": high, "log": log})
        }
        Distribution::Int { low, high, log } => {
            json!({"kind": "int", "low": low, "high": high, "log": log})
        }
        Distribution::Categorical { choices } => json!({"kind": "categorical", "choices": choices}),
    }
}

fn distribution_from(v: &Value) -> Option<Distribution> {
    let log = || v.get("log").and_then(Value::as_bool);
    Some(match v.get("kind")?.as_str()? {
        "float" => Distribution::Float {
            low: v.get("low")?.as_f64()?,
            high: v.get("high")?.as_f64()?,
            log: log()?,
        },
        "int" => Distribution::Int {
            low: v.get("low")?.as_i64()?,
            high: v.get("high")?.as_i64()?,
            log: log()?,
        },
        "categorical" => Distribution::Categorical {
            choices: v
                .get("choices")?
                .as_array()?
                .iter()
                .map(|c| c.as_str().map(str::to_string))
                .collect::<Option<_>>()?,
        },
        _ => return None,
    })
}

fn state_name(s: TrialState) -> &'static str {
    match s {
        TrialState::Running => "running",
        TrialState::Complete => "complete",
        TrialState::Pruned => "pruned",
        TrialState::Failed => "failed",
        TrialState::Interrupted => "interrupted",
    }
}

fn state_from(s: &str) -> Option<TrialState> {
    Some(match s {
        "running" => TrialState::Running,
        "complete" => TrialState::Complete,
        "pruned" => TrialState::Pruned,
        "failed" => TrialState::Failed,
        "interrupted" => TrialState::Interrupted,
        _ => return None,
    })
}

fn trial_json(t: &TrialRecord) -> Value {
    json!({
        "number": t.number,
        "state": state_name(t.state),
        "params": t.params.iter().map(|p| json!({
            "name": p.name,
            "distribution": distribution_json(&p.distribution),
            "value": p.value,
        })).collect::<Vec<_>>(),
        "value": t.value.map_or(Value::Null, number),
        "intermediate": t.intermediate.iter().map(|(s, v)| json!([s, number(*v)])).collect::<Vec<_>>(),
        "error": t.error,
        "seconds": t.seconds,
        "owner": t.owner,
        "retry_of": t.retry_of,
    })
}

fn trial_from(v: &Value) -> Option<TrialRecord> {
    let params = v
        .get("params")?
        .as_array()?
        .iter()
        .map(|p| {
            Some(Param {
                name: p.get("name")?.as_str()?.to_string(),
                distribution: distribution_from(p.get("distribution")?)?,
                value: p.get("value")?.as_f64()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let intermediate = v
        .get("intermediate")?
        .as_array()?
        .iter()
        .map(|pair| {
            let step = pair.get(0)?.as_u64()? as usize;
            let value = pair.get(1)?.as_f64().unwrap_or(f64::NAN);
            Some((step, value))
        })
        .collect::<Option<Vec<_>>>()?;
    let usize_of = |key: &str| v.get(key).and_then(Value::as_u64).map(|n| n as usize);
    Some(TrialRecord {
        number: usize_of("number")?,
        state: state_from(v.get("state")?.as_str()?)?,
        params,
        value: v.get("value").and_then(Value::as_f64),
        intermediate,
        error: v.get("error").and_then(Value::as_str).map(str::to_string),
        seconds: v.get("seconds").and_then(Value::as_f64).unwrap_or(0.0),
        owner: v.get("owner").and_then(Value::as_u64).map(|p| p as u32),
        retry_of: usize_of("retry_of"),
    })
}

/// A study's folder.
#[derive(Clone, Debug)]
pub(crate) struct Storage {
    pub(crate) dir: PathBuf,
}

/// The lock of a study's folder, released when dropped.
pub(crate) struct Lock {
    path: PathBuf,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Best effort: a lock left behind is removed by the next process, which finds
        // its owner gone.
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether process `pid` runs (on systems with `/proc`; elsewhere assumed to).
pub(crate) fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

impl Storage {
    fn file(&self) -> PathBuf {
        self.dir.join("study.json")
    }

    fn io(&self, path: PathBuf) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { path, source }
    }

    /// Takes the folder's lock, waiting for another process that holds it, and
    /// breaking a lock whose process has ended.
    pub(crate) fn lock(&self, study: &str) -> Result<Lock> {
        let path = self.dir.join("study.lock");
        let started = Instant::now();
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    write!(file, "{}", std::process::id()).map_err(self.io(path.clone()))?;
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let owner = fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    if owner.is_some_and(|pid| !alive(pid)) {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if started.elapsed() > LOCK_WAIT {
                        return Err(Error::Study {
                            study: study.to_string(),
                            detail: format!(
                                "{} has been held by process {} for over {} s: if no process of \
                                 this study runs, delete it",
                                path.display(),
                                owner.map_or("?".into(), |p| p.to_string()),
                                LOCK_WAIT.as_secs()
                            ),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(self.io(path)(e)),
            }
        }
    }

    /// The folder's definition and trials; `None` for a new folder.
    pub(crate) fn load(&self, study: &str) -> Result<Option<(Definition, Vec<TrialRecord>)>> {
        let path = self.file();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(path)(e)),
        };
        let bad = |detail: &str| Error::Study {
            study: study.to_string(),
            detail: format!("{} is not a study's state: {detail}", path.display()),
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
        if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(bad(&format!("its format is not `{FORMAT}`")));
        }
        let definition = v
            .get("definition")
            .and_then(Definition::from_json)
            .ok_or_else(|| bad("no definition"))?;
        let trials = v
            .get("trials")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no trials"))?
            .iter()
            .enumerate()
            .map(|(i, t)| trial_from(t).ok_or_else(|| bad(&format!("trial {i} cannot be read"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((definition, trials)))
    }

    /// Writes the definition and trials, atomically.
    pub(crate) fn save(&self, definition: &Definition, trials: &[TrialRecord]) -> Result<()> {
        let v = json!({
            "format": FORMAT,
            "definition": definition.to_json(),
            "trials": trials.iter().map(trial_json).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&v).map_err(|e| Error::Io {
            path: self.file(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&self.file(), |w| w.write_all(text.as_bytes()))
    }

    /// Writes `text` at `name` in the folder, atomically.
    pub(crate) fn write(&self, name: &str, text: &str) -> Result<()> {
        write_atomic(&self.dir.join(name), |w| w.write_all(text.as_bytes()))
    }
}
