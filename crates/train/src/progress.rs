//! Progress like Keras's `verbose`: a bar per epoch with its ETA, running loss,
//! metrics and images per second (1), one line per epoch (2), or nothing (0). The bar
//! is drawn only on a terminal; piped output gets the plain lines instead. On a narrow
//! terminal the bar gives up its throughput, then its width, before the metrics.

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

/// The widest bar, in characters.
const BAR_MAX: usize = 25;
/// The narrowest bar worth drawing; below it the line has no bar.
const BAR_MIN: usize = 8;
/// The characters of the bar's line besides the bar and the message:
/// `{pos:>5}/{len:5} [` and `] ETA {eta:<6} - `, and one column left free so that the
/// line never wraps.
const LINE_FIXED: usize = 12 + 2 + 15 + 1;

/// How the bar's line is laid out on a terminal of some width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    /// The bar's width (0: no bar).
    bar: usize,
    /// Whether the throughput is shown after the metrics.
    throughput: bool,
}

impl Layout {
    /// The layout for a terminal `columns` wide, metrics `metrics` characters long and
    /// a throughput `throughput` characters long (with its separator): the metrics
    /// always; then the throughput, if a bar of at least [`BAR_MIN`] still fits beside
    /// it; the bar as wide as what is left allows, up to [`BAR_MAX`].
    fn fit(columns: usize, metrics: usize, throughput: usize) -> Self {
        let room = columns.saturating_sub(LINE_FIXED + metrics);
        if room >= BAR_MIN + throughput {
            Self {
                bar: (room - throughput).min(BAR_MAX),
                throughput: true,
            }
        } else if room >= BAR_MIN {
            Self {
                bar: room.min(BAR_MAX),
                throughput: false,
            }
        } else {
            Self {
                bar: 0,
                throughput: false,
            }
        }
    }

    fn template(self) -> String {
        if self.bar == 0 {
            "{pos:>5}/{len:5} ETA {eta} - {wide_msg}".to_string()
        } else {
            format!(
                "{{pos:>5}}/{{len:5}} [{{bar:{}}}] ETA {{eta}} - {{wide_msg}}",
                self.bar
            )
        }
    }
}

/// The terminal's width in columns (80 when it cannot be told).
fn terminal_columns() -> usize {
    console::Term::stdout()
        .size_checked()
        .map_or(80, |(_, columns)| usize::from(columns))
}

/// The progress display of one `fit`.
#[derive(Debug)]
pub(crate) struct Progress {
    verbosity: Verbosity,
    terminal: bool,
    bar: Option<ProgressBar>,
    epochs: usize,
    last_refresh: Option<Instant>,
    /// The bar's layout, fitted to the terminal at the first figures of an epoch.
    layout: Option<Layout>,
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
            layout: None,
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
            set_layout(&bar, Layout::fit(terminal_columns(), 0, 0));
            self.bar = Some(bar);
            self.last_refresh = None;
            self.layout = None;
        }
    }

    /// After a batch: advance the bar; `running` is shown when given.
    pub(crate) fn batch(&mut self, running: Option<(&[(String, f64)], f64)>) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if let Some((values, images_per_s)) = running {
                let metrics = format_values(values);
                let throughput = format!(" - {images_per_s:.0} samples/s");
                let layout = *self.layout.get_or_insert_with(|| {
                    // A little slack for figures that grow by a digit.
                    let layout =
                        Layout::fit(terminal_columns(), metrics.len() + 2, throughput.len() + 1);
                    set_layout(bar, layout);
                    layout
                });
                if layout.throughput {
                    bar.set_message(metrics + &throughput);
                } else {
                    bar.set_message(metrics);
                }
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

/// Draws `bar` with `layout`.
fn set_layout(bar: &ProgressBar, layout: Layout) {
    let style = ProgressStyle::with_template(&layout.template()).map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `loss: 0.6009 - accuracy: 0.8133` and ` - 3966 samples/s`.
    const METRICS: usize = 31;
    const THROUGHPUT: usize = 18;

    #[test]
    fn at_80_columns_the_metrics_stay_and_the_throughput_goes_first() {
        let layout = Layout::fit(80, METRICS, THROUGHPUT);
        assert!(!layout.throughput);
        assert!(layout.bar >= BAR_MIN, "{layout:?}");
        assert!(LINE_FIXED + layout.bar + METRICS <= 80);
    }

    #[test]
    fn a_wide_terminal_shows_everything_and_a_narrow_one_drops_the_bar() {
        let wide = Layout::fit(140, METRICS, THROUGHPUT);
        assert_eq!(
            wide,
            Layout {
                bar: BAR_MAX,
                throughput: true
            }
        );
        let narrow = Layout::fit(60, METRICS, THROUGHPUT);
        assert_eq!(
            narrow,
            Layout {
                bar: 0,
                throughput: false
            }
        );
        assert!(!narrow.template().contains("bar"));
        assert!(wide.template().contains("{bar:25}"));
    }
}
