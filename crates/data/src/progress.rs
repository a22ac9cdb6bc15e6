//! A one-line download progress bar on stderr, drawn only when stderr is a terminal
//! (a log file or CI output gets no carriage-return noise).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The interval between redraws.
const REDRAW: Duration = Duration::from_millis(100);
/// The width of the bar in characters.
const WIDTH: usize = 30;

/// Progress of one transfer.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    start: Instant,
    last: Option<Instant>,
    enabled: bool,
}

impl Progress {
    /// A bar for `label` of `total` bytes (when known); drawn only if `enabled` and
    /// stderr is a terminal.
    pub fn new(label: &str, total: Option<u64>, enabled: bool) -> Self {
        Self {
            label: label.to_string(),
            total,
            done: 0,
            start: Instant::now(),
            last: None,
            enabled: enabled && std::io::stderr().is_terminal(),
        }
    }

    /// Records `bytes` more, redrawing at most every [`REDRAW`].
    pub fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self.last.is_none_or(|t| now.duration_since(t) >= REDRAW) {
            self.last = Some(now);
            self.draw(false);
        }
    }

    /// Draws the final state and ends the line.
    pub fn finish(&mut self) {
        if self.enabled {
            self.draw(true);
        }
    }

    fn draw(&self, end: bool) {
        let line = render(&self.label, self.done, self.total, self.start.elapsed());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}");
        if end {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

/// The text of the bar: `label [#####      ]  12.3 / 162.6 MB  4.1 MB/s`.
pub fn render(label: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    let rate = mb(done) / elapsed.as_secs_f64().max(1e-3);
    match total {
        Some(t) if t > 0 => {
            let filled = ((done.min(t) as f64 / t as f64) * WIDTH as f64) as usize;
            format!(
                "{label} [{}{}] {:6.1} / {:.1} MB {rate:6.1} MB/s",
                "#".repeat(filled),
                " ".repeat(WIDTH - filled),
                mb(done),
                mb(t)
            )
        }
        _ => format!("{label} {:6.1} MB {rate:6.1} MB/s", mb(done)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_fraction_and_rate() {
        let s = render(
            "x.gz",
            50_000_000,
            Some(100_000_000),
            Duration::from_secs(10),
        );
        assert!(
            s.starts_with("x.gz [###############               ]"),
            "{s}"
        );
        assert!(
            s.contains("50.0 / 100.0 MB") && s.contains("5.0 MB/s"),
            "{s}"
        );
        let s = render("y", 2_000_000, None, Duration::from_secs(1));
        assert!(s.contains("2.0 MB") && !s.contains('['), "{s}");
    }
}
