//! A frame's summary, printed as pandas' `describe(include="all")` (one line a
//! column), with each column's kind and missing cells, and the categories seen.

use std::fmt::{self, Write as _};
use std::path::PathBuf;

use super::{Cells, Date, Frame, Kind};
use crate::stats;

/// One column's summary.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnSummary {
    /// The column's name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// The cells that are not missing.
    pub count: usize,
    /// The missing cells.
    pub missing: usize,
    /// For categories and text: the distinct values and their counts, sorted by
    /// value.
    pub values: Vec<(String, usize)>,
    /// For numbers: mean, standard deviation (`n - 1`, as pandas), minimum, the
    /// quartiles (linear interpolation) and maximum.
    pub numbers: Option<[f64; 7]>,
    /// For dates: the earliest and the latest.
    pub dates: Option<(Date, Date)>,
}

impl ColumnSummary {
    /// The most frequent value of a category or text column and its count (the
    /// first in sorted order among equals).
    pub fn top(&self) -> Option<(&str, usize)> {
        self.values
            .iter()
            .fold(None, |best: Option<(&str, usize)>, (v, n)| match best {
                Some((_, m)) if m >= *n => best,
                _ => Some((v.as_str(), *n)),
            })
    }
}

/// A frame's summary; `Display` prints it as a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    /// The file it was read from.
    pub source: PathBuf,
    /// The number of rows.
    pub rows: usize,
    /// One summary a column, in order.
    pub columns: Vec<ColumnSummary>,
}

pub(super) fn describe(frame: &Frame) -> Description {
    let columns = frame
        .columns
        .iter()
        .map(|c| {
            let missing = c.missing();
            let mut summary = ColumnSummary {
                name: c.name.clone(),
                kind: c.kind,
                count: c.len() - missing,
                missing,
                values: Vec::new(),
                numbers: None,
                dates: None,
            };
            match &c.cells {
                Cells::Numbers(v) => {
                    let mut x: Vec<f64> = v.iter().flatten().copied().collect();
                    if !x.is_empty() {
                        x.sort_by(f64::total_cmp);
                        let n = x.len() as f64;
                        let mean = x.iter().sum::<f64>() / n;
                        let ss = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
                        let std = if x.len() > 1 {
                            (ss / (n - 1.0)).sqrt()
                        } else {
                            f64::NAN
                        };
                        let q = |p| stats::quantile_sorted(&x, p);
                        summary.numbers =
                            Some([mean, std, x[0], q(0.25), q(0.5), q(0.75), x[x.len() - 1]]);
                    }
                }
                Cells::Strings(_) => summary.values = c.counts(),
                Cells::Dates(v) => {
                    let min = v.iter().flatten().min();
                    let max = v.iter().flatten().max();
                    summary.dates = min.zip(max).map(|(a, b)| (*a, *b));
                }
            }
            summary
        })
        .collect();
    Description {
        source: frame.source.clone(),
        rows: frame.len(),
        columns,
    }
}

/// The decimals that show a column's numbers to about five significant digits.
fn decimals(values: &[f64]) -> usize {
    let largest = values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f64, |m, v| m.max(v.abs()));
    if largest == 0.0 {
        return 1;
    }
    (4 - largest.log10().floor() as i64).clamp(1, 4) as usize
}

/// The width of a table's column of names: the longest name, within 6 to 24.
pub(crate) fn name_width<'a>(names: impl Iterator<Item = &'a str>) -> usize {
    names
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 24)
}

fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
        out.push('~');
        out
    }
}

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_w = name_width(self.columns.iter().map(|c| c.name.as_str()));
        writeln!(
            f,
            "{}: {} rows, {} columns",
            self.source.display(),
            self.rows,
            self.columns.len()
        )?;
        writeln!(
            f,
            "{:<name_w$}  {:<8} {:>6} {:>7} {:>6}  {:<12} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "column",
            "kind",
            "count",
            "missing",
            "unique",
            "top",
            "freq",
            "mean",
            "std",
            "min",
            "25%",
            "50%",
            "75%",
            "max"
        )?;
        for c in &self.columns {
            let mut line = format!(
                "{:<name_w$}  {:<8} {:>6} {:>7}",
                clip(&c.name, name_w),
                c.kind.name(),
                c.count,
                c.missing
            );
            match c.top() {
                Some((top, freq)) => {
                    let _ = write!(
                        line,
                        " {:>6}  {:<12} {:>5}",
                        c.values.len(),
                        clip(top, 12),
                        freq
                    );
                }
                None => line.push_str(&" ".repeat(28)),
            }
            if let Some(stats) = &c.numbers {
                let d = decimals(stats);
                for v in stats {
                    let _ = if v.is_finite() {
                        write!(line, " {v:>10.d$}")
                    } else {
                        write!(line, " {:>10}", "NaN")
                    };
                }
            } else if let Some((min, max)) = c.dates {
                let blank = " ".repeat(11);
                let _ = write!(
                    line,
                    "{blank}{blank} {:>10}{blank}{blank}{blank} {:>10}",
                    min.to_string(),
                    max.to_string()
                );
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        let categories: Vec<&ColumnSummary> = self
            .columns
            .iter()
            .filter(|c| c.kind == Kind::Category)
            .collect();
        if !categories.is_empty() {
            writeln!(f, "categories seen:")?;
            for c in categories {
                let seen: Vec<String> = c.values.iter().map(|(v, n)| format!("{v} {n}")).collect();
                writeln!(f, "  {}: {}", c.name, seen.join(", "))?;
            }
        }
        Ok(())
    }
}
