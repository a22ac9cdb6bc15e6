//! Fitting a [`TablePipeline`] on the training rows: every choice is checked
//! against the frame first, then each step learns from what the steps before it
//! give, and nothing is returned unless all of it succeeded.

use std::collections::HashSet;

use super::{
    CategorySteps, Dropped, FittedColumn, FittedPipeline, FittedReshape, FittedTarget, Impute,
    NumberSteps, Reshape, Role, RowCounts, Scaling, TablePipeline,
};
use crate::error::{Error, Result};
use crate::frame::{Cells, Column, Frame, Kind};
use crate::stats;

impl TablePipeline {
    /// Learns every statistic from `frame` (the training split only, so that
    /// nothing leaks from validation or test rows).
    ///
    /// # Errors
    /// [`Error::Column`] when a column it names is absent or of the wrong kind, or
    /// has no value to fit a statistic on; [`Error::Cell`] for a value a step cannot
    /// take (`log1p` of -2); [`Error::Table`] when no row or no input column is left
    /// after cleaning; [`Error::Config`] for fractions or quantiles outside 0 to 1.
    pub fn fit(&self, frame: &Frame) -> Result<FittedPipeline> {
        self.check(frame)?;
        let target = frame.require(&self.target)?;
        let all: Vec<usize> = (0..frame.len()).collect();
        let with_target: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| !target.cells().is_missing(i))
            .collect();

        let mut dropped: Vec<(&Column, Option<Dropped>)> = Vec::new();
        for c in frame.columns().iter().filter(|c| c.name() != self.target) {
            let missing = with_target
                .iter()
                .filter(|&&i| c.cells().is_missing(i))
                .count();
            let fraction = missing as f64 / with_target.len().max(1) as f64;
            let why = if self.drop.iter().any(|d| d == c.name()) {
                Some(Dropped::Asked)
            } else if c.kind() == Kind::Text {
                Some(Dropped::Text)
            } else if self.max_missing_column.is_some_and(|m| fraction > m) {
                Some(Dropped::Missing(fraction))
            } else {
                None
            };
            dropped.push((c, why));
        }
        let used: Vec<&Column> = dropped
            .iter()
            .filter(|(_, why)| why.is_none())
            .map(|(c, _)| *c)
            .collect();
        let (rows, counts) = keep_rows(
            frame,
            Some(target),
            &used,
            self.max_missing_row,
            self.drop_duplicates,
        )?;
        if used.is_empty() {
            return Err(Error::Table {
                path: frame.source().to_path_buf(),
                message: format!(
                    "no input column is left to predict `{}` from: {}",
                    self.target,
                    dropped
                        .iter()
                        .map(|(c, why)| format!("`{}` {}", c.name(), describe_drop(why.as_ref())))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }

        let mut columns = Vec::new();
        for (c, why) in dropped {
            let missing = rows.iter().filter(|&&i| c.cells().is_missing(i)).count();
            let role = match why {
                Some(why) => Role::Dropped(why),
                None => self.fit_column(frame, c, &rows)?,
            };
            let indicator = self.indicators && missing > 0 && !matches!(role, Role::Dropped(_));
            columns.push(FittedColumn {
                name: c.name().to_string(),
                kind: c.kind(),
                missing,
                indicator,
                role,
            });
        }
        let classes = match target.kind() {
            Kind::Category => {
                let mut seen: Vec<String> = rows
                    .iter()
                    .filter_map(|&i| target.strings().and_then(|s| s[i].clone()))
                    .collect();
                seen.sort_unstable();
                seen.dedup();
                seen
            }
            _ => Vec::new(),
        };
        let layout = super::apply::feature_layout(&columns);
        let mut fitted = FittedPipeline {
            target: FittedTarget {
                name: self.target.clone(),
                kind: target.kind(),
                classes,
            },
            columns,
            max_missing_row: self.max_missing_row,
            drop_duplicates: self.drop_duplicates,
            missing_markers: frame.missing_markers().to_vec(),
            training: counts,
            features: layout.iter().map(|(name, _)| name.clone()).collect(),
            scales: Vec::new(),
        };
        // The last step, fitted on what the others give on the training rows.
        let x = fitted.encode_rows(frame, &rows)?;
        let width = fitted.width();
        fitted.scales = layout
            .iter()
            .enumerate()
            .map(|(j, (_, numeric))| {
                if !(*numeric || self.scale_every_feature) {
                    return None;
                }
                let column: Vec<f64> = x.iter().skip(j).step_by(width).copied().collect();
                match self.scaling {
                    Scaling::None => None,
                    Scaling::Standardize => {
                        let sd = stats::variance(&column).sqrt();
                        Some((stats::mean(&column), if sd > 0.0 { sd } else { 1.0 }))
                    }
                    Scaling::MinMax => {
                        let min = column.iter().copied().fold(f64::INFINITY, f64::min);
                        let max = column.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        Some((min, if max > min { max - min } else { 1.0 }))
                    }
                }
            })
            .collect();
        Ok(fitted)
    }

    /// Checks every name, kind, fraction and imputation against `frame` before
    /// anything is fitted.
    fn check(&self, frame: &Frame) -> Result<()> {
        let target = frame.require(&self.target)?;
        if !matches!(target.kind(), Kind::Number | Kind::Category) {
            return Err(frame.column_error(
                &self.target,
                format!(
                    "is the target but a {} column; a target is a category (class labels) or a \
                     number: read it as one with ReadOptions::kind",
                    target.kind().name()
                ),
            ));
        }
        let named = self
            .drop
            .iter()
            .map(|n| (n, "drop_columns"))
            .chain(
                self.impute_columns
                    .iter()
                    .map(|(n, _)| (n, "impute_column")),
            )
            .chain(
                self.encode_columns
                    .iter()
                    .map(|(n, _)| (n, "encode_column")),
            )
            .chain(self.clip_columns.iter().map(|(n, _)| (n, "clip_column")))
            .chain(self.reshape.iter().map(|(n, r)| {
                (
                    n,
                    match r {
                        Reshape::Log1p => "log1p",
                        Reshape::Power => "power",
                        Reshape::BoxCox => "box_cox",
                    },
                )
            }));
        for (name, method) in named {
            if *name == self.target {
                return Err(frame.column_error(
                    name,
                    format!("is the target; TablePipeline::{method} applies to input columns"),
                ));
            }
            frame.require(name)?;
        }
        let kind_of = |name: &str| frame.column(name).map_or(Kind::Text, Column::kind);
        for (name, _) in &self.encode_columns {
            if kind_of(name) != Kind::Category {
                return Err(frame.column_error(
                    name,
                    format!(
                        "is a {} column; TablePipeline::encode_column encodes categories",
                        kind_of(name).name()
                    ),
                ));
            }
        }
        let numbers_only = self
            .clip_columns
            .iter()
            .map(|(n, _)| (n, "clip_column"))
            .chain(
                self.reshape
                    .iter()
                    .map(|(n, _)| (n, "log1p / power / box_cox")),
            );
        for (name, method) in numbers_only {
            if kind_of(name) != Kind::Number {
                return Err(frame.column_error(
                    name,
                    format!(
                        "is a {} column; TablePipeline::{method} takes number columns",
                        kind_of(name).name()
                    ),
                ));
            }
        }
        for (what, f) in [
            ("drop_rows_missing_over", self.max_missing_row),
            ("drop_columns_missing_over", self.max_missing_column),
        ] {
            if let Some(f) = f
                && !(0.0..=1.0).contains(&f)
            {
                return Err(Error::Config(format!(
                    "TablePipeline::{what}: the fraction {f} is not in [0, 1]"
                )));
            }
        }
        for (low, high) in self
            .clip
            .iter()
            .chain(self.clip_columns.iter().map(|(_, q)| q))
        {
            if !(0.0 <= *low && low <= high && *high <= 1.0) {
                return Err(Error::Config(format!(
                    "clipping to the quantiles {low} and {high}: they must satisfy 0 <= low <= high <= 1"
                )));
            }
        }
        for c in frame.columns() {
            if c.name() == self.target || matches!(c.kind(), Kind::Text) {
                continue;
            }
            let how = self.impute_for(c);
            let fits = match (c.kind(), how) {
                (Kind::Category, Impute::MostFrequent | Impute::ConstantCategory(_)) => true,
                (Kind::Category, _) => false,
                (Kind::Number, Impute::ConstantCategory(_)) => false,
                (Kind::Date, Impute::Constant(_) | Impute::ConstantCategory(_)) => false,
                _ => true,
            };
            if !fits {
                let takes = match c.kind() {
                    Kind::Category => "Impute::MostFrequent or Impute::ConstantCategory",
                    Kind::Date => "Impute::Mean, Median or MostFrequent",
                    _ => "Impute::Mean, Median, MostFrequent or Constant",
                };
                return Err(frame.column_error(
                    c.name(),
                    format!(
                        "is a {} column, which {how:?} cannot fill: it takes {takes} \
                         (TablePipeline::impute_column)",
                        c.kind().name()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn impute_for(&self, c: &Column) -> &Impute {
        self.impute_columns
            .iter()
            .rev()
            .find(|(n, _)| n == c.name())
            .map(|(_, how)| how)
            .unwrap_or(match c.kind() {
                Kind::Category => &self.impute_categories,
                _ => &self.impute_numbers,
            })
    }

    /// The fitted steps of input column `c` on training rows `rows`.
    fn fit_column(&self, frame: &Frame, c: &Column, rows: &[usize]) -> Result<Role> {
        let how = self.impute_for(c);
        match c.cells() {
            Cells::Numbers(v) => {
                let values: Vec<Option<f64>> = rows.iter().map(|&i| v[i]).collect();
                let clip = self
                    .clip_columns
                    .iter()
                    .rev()
                    .find(|(n, _)| n == c.name())
                    .map(|(_, q)| *q)
                    .or(self.clip);
                let reshape = self
                    .reshape
                    .iter()
                    .rev()
                    .find(|(n, _)| n == c.name())
                    .map(|(_, r)| *r);
                let steps = self.fit_number(frame, c.name(), &values, rows, how, clip, reshape)?;
                Ok(Role::Number(steps))
            }
            Cells::Dates(v) => {
                let part = |f: fn(crate::frame::Date) -> f64| -> Vec<Option<f64>> {
                    rows.iter().map(|&i| v[i].map(f)).collect()
                };
                let year = part(|d| f64::from(d.year()));
                let day = part(|d| f64::from(d.day_of_year()));
                Ok(Role::Date {
                    year: self.fit_number(frame, c.name(), &year, rows, how, None, None)?,
                    day_of_year: self.fit_number(frame, c.name(), &day, rows, how, None, None)?,
                })
            }
            Cells::Strings(v) => {
                let observed: Vec<&String> = rows.iter().filter_map(|&i| v[i].as_ref()).collect();
                let fill = match how {
                    Impute::ConstantCategory(s) => s.clone(),
                    _ => {
                        if observed.is_empty() {
                            return Err(no_values(frame, c.name(), rows.len()));
                        }
                        stats::most_frequent(&observed).clone()
                    }
                };
                let mut categories: Vec<String> = observed.into_iter().cloned().collect();
                if rows.iter().any(|&i| v[i].is_none()) {
                    categories.push(fill.clone());
                }
                categories.sort_unstable();
                categories.dedup();
                let encoding = self
                    .encode_columns
                    .iter()
                    .rev()
                    .find(|(n, _)| n == c.name())
                    .map_or(self.encoding, |(_, e)| *e);
                Ok(Role::Category(CategorySteps {
                    categories,
                    fill,
                    encoding,
                    unknown: self.unknown,
                }))
            }
        }
    }

    /// The fitted steps of one number (`values`: the training rows' cells).
    #[allow(clippy::too_many_arguments)]
    fn fit_number(
        &self,
        frame: &Frame,
        name: &str,
        values: &[Option<f64>],
        rows: &[usize],
        how: &Impute,
        clip: Option<(f64, f64)>,
        reshape: Option<Reshape>,
    ) -> Result<NumberSteps> {
        let observed: Vec<f64> = values.iter().flatten().copied().collect();
        let fill = match how {
            Impute::Constant(v) => *v,
            _ if observed.is_empty() => return Err(no_values(frame, name, rows.len())),
            Impute::Median => stats::median(&observed),
            Impute::MostFrequent => stats::most_frequent(&observed),
            _ => stats::mean(&observed),
        };
        let mut x: Vec<f64> = values.iter().map(|v| v.unwrap_or(fill)).collect();
        let clip = clip.map(|(low, high)| (stats::quantile(&x, low), stats::quantile(&x, high)));
        if let Some((low, high)) = clip {
            x.iter_mut().for_each(|v| *v = v.clamp(low, high));
        }
        let reshape = match reshape {
            None => None,
            Some(Reshape::Log1p) => {
                if let Some(k) = x.iter().position(|&v| v <= -1.0) {
                    return Err(frame.cell_error(
                        name,
                        rows[k],
                        format!("log1p needs values above -1, not {}", x[k]),
                    ));
                }
                x.iter_mut().for_each(|v| *v = v.ln_1p());
                Some(FittedReshape::Log1p)
            }
            Some(Reshape::Power) => {
                let lambda = stats::yeo_johnson_lambda(&x);
                x.iter_mut()
                    .for_each(|v| *v = stats::yeo_johnson(*v, lambda));
                Some(FittedReshape::Power(lambda))
            }
            Some(Reshape::BoxCox) => {
                if let Some(k) = x.iter().position(|&v| v <= 0.0) {
                    return Err(frame.cell_error(
                        name,
                        rows[k],
                        format!(
                            "Box-Cox needs positive values, not {}; TablePipeline::power \
                             (Yeo-Johnson) takes any",
                            x[k]
                        ),
                    ));
                }
                let lambda = stats::box_cox_lambda(&x);
                x.iter_mut().for_each(|v| *v = stats::box_cox(*v, lambda));
                Some(FittedReshape::BoxCox(lambda))
            }
        };
        Ok(NumberSteps {
            fill,
            clip,
            reshape,
        })
    }
}

fn no_values(frame: &Frame, name: &str, rows: usize) -> Error {
    frame.column_error(
        name,
        format!(
            "has no value in the {rows} training rows to fit its imputation on: leave it out \
             (TablePipeline::drop_columns or drop_columns_missing_over) or fill it with a constant"
        ),
    )
}

fn describe_drop(why: Option<&Dropped>) -> String {
    match why {
        Some(Dropped::Asked) => "left out as asked".into(),
        Some(Dropped::Text) => "is free text".into(),
        Some(Dropped::Missing(f)) => format!("misses {:.0} % of its cells", f * 100.0),
        None => "kept".into(),
    }
}

/// The rows of labelled data that cleaning keeps: those with a target (when
/// `target` is given), missing at most `max_missing` of the `used` cells, and not
/// equal to an earlier kept row (with `dedup`); and the counts of each.
pub(super) fn keep_rows(
    frame: &Frame,
    target: Option<&Column>,
    used: &[&Column],
    max_missing: Option<f64>,
    dedup: bool,
) -> Result<(Vec<usize>, RowCounts)> {
    let mut counts = RowCounts {
        read: frame.len(),
        ..RowCounts::default()
    };
    let mut seen = HashSet::new();
    let mut rows = Vec::with_capacity(frame.len());
    // The first rows each reason dropped, for an error that names them.
    let mut dropped: [Vec<usize>; 3] = Default::default();
    for i in 0..frame.len() {
        if target.is_some_and(|t| t.cells().is_missing(i)) {
            counts.without_target += 1;
            dropped[0].push(i);
            continue;
        }
        if let Some(max) = max_missing {
            let missing = used.iter().filter(|c| c.cells().is_missing(i)).count();
            if missing as f64 > max * used.len() as f64 {
                counts.too_sparse += 1;
                dropped[1].push(i);
                continue;
            }
        }
        if dedup {
            let mut key = String::new();
            for c in used.iter().copied().chain(target) {
                key.push_str(&cell_key(c, i));
                key.push('\u{1f}');
            }
            if !seen.insert(key) {
                counts.duplicates += 1;
                dropped[2].push(i);
                continue;
            }
        }
        rows.push(i);
    }
    counts.kept = rows.len();
    if frame.is_empty() {
        return Err(Error::Table {
            path: frame.source().to_path_buf(),
            message: "no rows to fit the cleaning on: the training rows are none".into(),
        });
    }
    if rows.is_empty() {
        let target_name = target.map_or("the target", |t| t.name());
        let sparse = format!(
            "missing more than {:.0} % of their input cells",
            max_missing.unwrap_or(1.0) * 100.0
        );
        let why = [
            format!("without the target `{target_name}`"),
            sparse,
            "repeating an earlier row".into(),
        ]
        .iter()
        .zip(&dropped)
        .filter(|(_, at)| !at.is_empty())
        .map(|(what, at)| format!("{} {what} ({})", at.len(), name_rows(frame, at)))
        .collect::<Vec<_>>()
        .join(", ");
        return Err(Error::Table {
            path: frame.source().to_path_buf(),
            message: format!(
                "no rows left after cleaning: of {} rows, {why}",
                counts.read
            ),
        });
    }
    Ok((rows, counts))
}

/// The data rows (from 1) of frame rows `at`: the first three, and how many more.
fn name_rows(frame: &Frame, at: &[usize]) -> String {
    let first: Vec<String> = at
        .iter()
        .take(3)
        .map(|&i| frame.origins()[i].row.to_string())
        .collect();
    let more = at.len().saturating_sub(3);
    let rows = if at.len() == 1 { "row" } else { "rows" };
    if more == 0 {
        format!("{rows} {}", first.join(", "))
    } else {
        format!("{rows} {} and {more} more", first.join(", "))
    }
}

/// A cell as text that tells values (and a missing cell) apart.
fn cell_key(c: &Column, i: usize) -> String {
    match c.cells() {
        Cells::Numbers(v) => v[i].map_or("-".into(), |x| format!("n{:x}", x.to_bits())),
        Cells::Strings(v) => v[i]
            .as_ref()
            .map_or("-".into(), |s| format!("s{}:{s}", s.len())),
        Cells::Dates(v) => v[i].map_or("-".into(), |d| format!("d{d}")),
    }
}
