//! Trials in parallel processes: [`Workers`] starts copies of the running program
//! that each run trials of one study in a shared folder ([`Study::storage`]), taking
//! turns at its lock to draw and record trials. A process rather than a thread a
//! trial: each has its own backend and memory, and one that crashes takes only its
//! own trial with it (the study marks it interrupted and runs it again).
//!
//! [`Study::storage`]: super::Study::storage

use std::ffi::OsStr;
use std::process::{Child, Command};

use crate::{Error, Result};

/// The environment variable that tells a worker its index (from 0).
pub const WORKER_VAR: &str = "KILN_STUDY_WORKER";

/// The index of this process among the workers of a study, when [`Workers::spawn`]
/// started it; `None` in the process that started them (or any other).
pub fn worker_index() -> Option<usize> {
    std::env::var(WORKER_VAR).ok()?.parse().ok()
}

/// Worker processes running trials of a study; [`Workers::wait`] waits for them all.
#[derive(Debug)]
pub struct Workers {
    children: Vec<Child>,
}

impl Workers {
    /// Starts `n` copies of this program (`std::env::current_exe`) with arguments
    /// `args`, each with [`WORKER_VAR`] set to its index and, with `threads`, with
    /// `KILN_THREADS` set so that the workers share the cores rather than each
    /// taking them all. A worker runs the same `Study::optimize` on the same folder
    /// and should stop after it ([`worker_index`] says that it is one).
    pub fn spawn<I, S>(n: usize, args: I, threads: Option<usize>) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let exe = std::env::current_exe().map_err(|source| Error::Io {
            path: "the running program".into(),
            source,
        })?;
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let mut workers = Self {
            children: Vec::with_capacity(n),
        };
        for index in 0..n {
            let mut command = Command::new(&exe);
            command.args(&args).env(WORKER_VAR, index.to_string());
            if let Some(threads) = threads {
                command.env("KILN_THREADS", threads.max(1).to_string());
            }
            let child = command.spawn().map_err(|source| Error::Io {
                path: exe.clone(),
                source,
            })?;
            workers.children.push(child);
        }
        Ok(workers)
    }

    /// The workers' process ids.
    pub fn ids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Waits for every worker; an error names those that failed (their trials are
    /// recorded in the study as interrupted, and run again by the next process).
    pub fn wait(mut self) -> Result<()> {
        let mut failed = Vec::new();
        for (index, child) in self.children.iter_mut().enumerate() {
            match child.wait() {
                Ok(status) if status.success() => {}
                Ok(status) => failed.push(format!("worker {index} ({status})")),
                Err(e) => failed.push(format!("worker {index} ({e})")),
            }
        }
        self.children.clear();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "study workers failed: {}",
                failed.join(", ")
            )))
        }
    }
}

impl Drop for Workers {
    /// Workers not waited for (an error in the process that started them) are
    /// waited for here, so that none is left behind as a zombie.
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}
