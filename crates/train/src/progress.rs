//! Progress like Keras's `verbose`: a bar per epoch with its ETA, running loss,
//! metrics and images per second (1), one line per epoch (2), or nothing (0). The bar
//! is drawn only on a terminal; piped output gets the plain lines instead.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::EpochLog;

/// How much `fit` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verbosity {
    /// Nothing.
    Silent,
    /// A bar per epoch (on a terminal; a line per epoch otherwise).
    #[default]
    Bar,
    /// One line per epoch.
    Epoch,
}

/// The interval between refreshes of the bar's figures.
pub(crate) const REFRESH: Duration = Duration::from_millis(200);

/// The progress display of one `fit`.
#[derive(Debug)]
pub(crate) struct Progress {
    verbosity: Verbosity,
    terminal: bool,
    bar: Option<ProgressBar>,
    epochs: usize,
    last_refresh: Option<Instant>,
}

/// `loss: 0.1234 - accuracy: 0.9876`, Keras's way.
pub(crate) fn format_values(values: &[(String, f64)]) -> String {
    values
        .iter()
        .map(|(name, v)| format!("{name}: {v:.4}"))
        .collect::<Vec<_>>()
        .join(" - ")
}

impl Progress {
    pub(crate) fn new(verbosity: Verbosity, epochs: usize) -> Self {
        Self {
            verbosity,
            terminal: std::io::stdout().is_terminal(),
            bar: None,
            epochs,
            last_refresh: None,
        }
    }

    fn bar_on(&self) -> bool {
        self.verbosity == Verbosity::Bar && self.terminal
    }

    /// Whether the running figures are worth computing now.
    pub(crate) fn wants_refresh(&mut self) -> bool {
        if !self.bar_on() {
            return false;
        }
        let now = Instant::now();
        match self.last_refresh {
            Some(last) if now - last < REFRESH => false,
            _ => {
                self.last_refresh = Some(now);
                true
            }
        }
    }

    pub(crate) fn epoch_begin(&mut self, epoch: usize, steps: usize) {
        if self.verbosity == Verbosity::Silent {
            return;
        }
        println!("Epoch {}/{}", epoch + 1, self.epochs);
        if self.bar_on() {
            let bar =
                ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stdout());
            let style =
                ProgressStyle::with_template("{pos:>5}/{len:5} [{bar:25}] ETA {eta} - {wide_msg}")
                    .map(|s| s.progress_chars("=> "));
            if let Ok(style) = style {
                bar.set_style(style);
            }
            self.bar = Some(bar);
            self.last_refresh = None;
        }
    }

    /// After a batch: advance the bar; `running` is shown when given.
    pub(crate) fn batch(&mut self, running: Option<(&[(String, f64)], f64)>) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if let Some((values, images_per_s)) = running {
                bar.set_message(format!(
                    "{images_per_s:.0} samples/s - {}",
                    format_values(values)
                ));
            }
        }
    }

    pub(crate) fn epoch_end(&mut self, log: &EpochLog, steps: usize, images_per_s: f64) {
        if self.verbosity == Verbosity::Silent {
            return;
        }
        let line = format!(
            "{steps}/{steps} - {:.1}s - {:.0} samples/s - {} - lr: {:.3e}",
            log.seconds,
            images_per_s,
            format_values(&log.values),
            log.learning_rate
        );
        // The epoch's line replaces its bar, as in Keras.
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        println!("{line}");
    }
}
