//! [`CsvLogger`]: one CSV row an epoch.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use kiln_kernels::Backend;
use kiln_nn::Model;

use super::{Callback, Context};
use crate::{EpochLog, Error, Result};

/// Writes `epoch`, every logged value, `learning_rate` and `seconds` to a CSV file,
/// one row an epoch, flushed at once (Keras's `CSVLogger`).
#[derive(Debug)]
pub struct CsvLogger {
    path: PathBuf,
    append: bool,
    file: Option<File>,
}

impl CsvLogger {
    /// A logger writing `path` afresh.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            append: false,
            file: None,
        }
    }

    /// The same, appending to an existing file (when resuming).
    #[must_use]
    pub fn append(mut self, on: bool) -> Self {
        self.append = on;
        self
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl<B: Backend, M: Model<B>> Callback<B, M> for CsvLogger {
    fn root_only(&self) -> bool {
        true
    }

    fn on_train_begin(&mut self, _ctx: &mut Context<'_, B, M>) -> Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.append)
            .truncate(!self.append)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        self.file = Some(file);
        Ok(())
    }

    fn on_epoch_end(&mut self, log: &EpochLog, _ctx: &mut Context<'_, B, M>) -> Result<()> {
        let mut text = String::new();
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(true);
        if empty {
            text.push_str("epoch");
            for (name, _) in &log.values {
                text.push(',');
                text.push_str(name);
            }
            text.push_str(",learning_rate,seconds\n");
        }
        text.push_str(&log.epoch.to_string());
        for (_, value) in &log.values {
            text.push_str(&format!(",{value}"));
        }
        text.push_str(&format!(",{},{:.3}\n", log.learning_rate, log.seconds));
        let result = file.write_all(text.as_bytes()).and_then(|()| file.flush());
        result.map_err(|e| self.io(e))
    }

    fn on_train_end(&mut self, _ctx: &mut Context<'_, B, M>) -> Result<()> {
        self.file = None;
        Ok(())
    }
}
