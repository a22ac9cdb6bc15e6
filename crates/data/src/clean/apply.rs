//! Applying a [`FittedPipeline`]: labelled frames become data sets, unlabelled
//! ones inputs to predict on, with the training statistics and nothing refitted.

use super::{
    CategorySteps, Encoding, FittedColumn, FittedPipeline, FittedReshape, NumberSteps, Role,
    Unknown,
};
use crate::dataset::{InMemory, Inputs, Targets};
use crate::error::{Error, Result};
use crate::frame::{Cells, Column, Date, Frame, Kind};
use crate::stats;

/// The feature names of `columns`, in order, each with whether it came from a
/// number or a date (the features scaling applies to by default).
pub(super) fn feature_layout(columns: &[FittedColumn]) -> Vec<(String, bool)> {
    let mut names = Vec::new();
    for c in columns {
        match &c.role {
            Role::Dropped(_) => continue,
            Role::Number(_) => names.push((c.name.clone(), true)),
            Role::Date { .. } => {
                names.push((format!("{}.year", c.name), true));
                names.push((format!("{}.day_of_year", c.name), true));
            }
            Role::Category(steps) => match steps.encoding {
                Encoding::Ordinal => names.push((c.name.clone(), false)),
                Encoding::OneHot => {
                    let one_hot = steps.categories.iter().map(|k| format!("{}={k}", c.name));
                    names.extend(one_hot.map(|n| (n, false)));
                    if steps.unknown == Unknown::Reserved {
                        names.push((format!("{}.unknown", c.name), false));
                    }
                }
            },
        }
        if c.indicator {
            names.push((format!("{}.missing", c.name), false));
        }
    }
    names
}

/// A column's cells, converted to the kind the pipeline was fitted on.
enum Values {
    Numbers(Vec<Option<f64>>),
    Strings(Vec<Option<String>>),
    Dates(Vec<Option<Date>>),
}

impl FittedPipeline {
    /// The labelled rows of `frame` as a data set: `[width]` features a row, and
    /// the target as class labels (with the class names) or real values. Rows
    /// without a target are dropped, and, as in training, rows over the missing
    /// fraction and duplicates when the pipeline drops them.
    ///
    /// # Errors
    /// [`Error::Column`] when `frame` lacks a column the pipeline uses, or holds one
    /// that cannot be read as its training kind; [`Error::Cell`] for a category or a
    /// class unseen in training (under [`Unknown::Error`]) or a value a step cannot
    /// take; [`Error::Table`] when no row is left.
    pub fn transform(&self, frame: &Frame) -> Result<InMemory> {
        let target = frame.require(&self.target.name)?;
        let used = self.used_columns(frame)?;
        let (rows, _) = super::fit::keep_rows(
            frame,
            Some(target),
            &used,
            self.max_missing_row,
            self.drop_duplicates,
        )?;
        let x = self.encode_rows(frame, &rows)?;
        let targets = match self.target.kind {
            Kind::Category => {
                let cells = strings_of(frame, target)?;
                let labels = rows
                    .iter()
                    .map(|&i| {
                        let class = cells[i].as_deref().unwrap_or_default();
                        self.target
                            .classes
                            .binary_search_by(|c| c.as_str().cmp(class))
                            .map(|l| l as u32)
                            .map_err(|_| {
                                frame.cell_error(
                                    &self.target.name,
                                    i,
                                    format!(
                                        "the class `{class}` was not among the training classes ({})",
                                        self.target.classes.join(", ")
                                    ),
                                )
                            })
                    })
                    .collect::<Result<Vec<u32>>>()?;
                Targets::Classes {
                    labels,
                    classes: self.target.classes.len(),
                }
            }
            _ => {
                let cells = numbers_of(frame, target)?;
                Targets::Real {
                    values: rows
                        .iter()
                        .map(|&i| cells[i].unwrap_or(0.0) as f32)
                        .collect(),
                    width: 1,
                }
            }
        };
        let data = InMemory::new(vec![self.width()], Inputs::F32(to_f32(&x)), targets)?;
        Ok(data.with_class_names(self.target.classes.clone()))
    }

    /// Every row of `frame` as inputs to predict on (`Trainer::predict`), none
    /// dropped; the target column, if there, is ignored, and the targets are zeros.
    ///
    /// # Errors
    /// As [`FittedPipeline::transform`], except for the target.
    pub fn inputs(&self, frame: &Frame) -> Result<InMemory> {
        if frame.is_empty() {
            return Err(Error::Table {
                path: frame.source().to_path_buf(),
                message: "no rows to predict on".into(),
            });
        }
        let x = self.values(frame)?;
        let n = frame.len();
        let targets = match self.target.kind {
            Kind::Category => Targets::Classes {
                labels: vec![0; n],
                classes: self.target.classes.len().max(1),
            },
            _ => Targets::Real {
                values: vec![0.0; n],
                width: 1,
            },
        };
        let data = InMemory::new(vec![self.width()], Inputs::F32(to_f32(&x)), targets)?;
        Ok(data.with_class_names(self.target.classes.clone()))
    }

    /// The features of every row of `frame` in `f64`, row after row (what
    /// [`FittedPipeline::inputs`] holds before its conversion to `f32`).
    ///
    /// # Errors
    /// As [`FittedPipeline::inputs`].
    pub fn values(&self, frame: &Frame) -> Result<Vec<f64>> {
        self.used_columns(frame)?;
        let rows: Vec<usize> = (0..frame.len()).collect();
        self.encode_rows(frame, &rows)
    }

    /// The columns of `frame` the pipeline uses, in its order.
    fn used_columns<'f>(&self, frame: &'f Frame) -> Result<Vec<&'f Column>> {
        self.columns
            .iter()
            .filter(|c| !matches!(c.role, Role::Dropped(_)))
            .map(|c| {
                frame.column(&c.name).ok_or_else(|| {
                    frame.column_error(
                        &c.name,
                        "is missing from these rows, but the pipeline was fitted with it",
                    )
                })
            })
            .collect()
    }

    /// The features of `rows` of `frame`, row after row (scaled once the pipeline
    /// holds its scales).
    pub(super) fn encode_rows(&self, frame: &Frame, rows: &[usize]) -> Result<Vec<f64>> {
        let width = self.width();
        let mut out = vec![0f64; rows.len() * width];
        let mut offset = 0;
        for fitted in &self.columns {
            if matches!(fitted.role, Role::Dropped(_)) {
                continue;
            }
            let column = frame.require(&fitted.name)?;
            let values = convert(frame, column, fitted.kind)?;
            let missing = |i: usize| match &values {
                Values::Numbers(v) => v[i].is_none(),
                Values::Strings(v) => v[i].is_none(),
                Values::Dates(v) => v[i].is_none(),
            };
            let used = match (&fitted.role, &values) {
                (Role::Number(steps), Values::Numbers(v)) => {
                    for (r, &i) in rows.iter().enumerate() {
                        out[r * width + offset] = number(frame, &fitted.name, i, v[i], steps)?;
                    }
                    1
                }
                (Role::Date { year, day_of_year }, Values::Dates(v)) => {
                    for (r, &i) in rows.iter().enumerate() {
                        let d = v[i];
                        let y = d.map(|d| f64::from(d.year()));
                        let doy = d.map(|d| f64::from(d.day_of_year()));
                        out[r * width + offset] = number(frame, &fitted.name, i, y, year)?;
                        out[r * width + offset + 1] =
                            number(frame, &fitted.name, i, doy, day_of_year)?;
                    }
                    2
                }
                (Role::Category(steps), Values::Strings(v)) => {
                    let slots = category_width(steps);
                    for (r, &i) in rows.iter().enumerate() {
                        let at = r * width + offset;
                        category(
                            frame,
                            &fitted.name,
                            i,
                            v[i].as_deref(),
                            steps,
                            &mut out[at..at + slots],
                        )?;
                    }
                    slots
                }
                _ => {
                    return Err(frame.column_error(
                        &fitted.name,
                        "does not hold what the pipeline was fitted on (a bug: please report it)",
                    ));
                }
            };
            offset += used;
            if fitted.indicator {
                for (r, &i) in rows.iter().enumerate() {
                    out[r * width + offset] = if missing(i) { 1.0 } else { 0.0 };
                }
                offset += 1;
            }
        }
        if !self.scales.is_empty() {
            for row in out.chunks_exact_mut(width) {
                for (v, scale) in row.iter_mut().zip(&self.scales) {
                    if let Some((center, scale)) = scale {
                        *v = (*v - center) / scale;
                    }
                }
            }
        }
        Ok(out)
    }
}

fn to_f32(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// The features a category column takes.
fn category_width(steps: &CategorySteps) -> usize {
    match steps.encoding {
        Encoding::Ordinal => 1,
        Encoding::OneHot => {
            steps.categories.len() + usize::from(steps.unknown == Unknown::Reserved)
        }
    }
}

/// One number through its fitted steps.
fn number(
    frame: &Frame,
    name: &str,
    i: usize,
    cell: Option<f64>,
    steps: &NumberSteps,
) -> Result<f64> {
    let mut x = cell.unwrap_or(steps.fill);
    if let Some((low, high)) = steps.clip {
        x = x.clamp(low, high);
    }
    match steps.reshape {
        None => {}
        Some(FittedReshape::Log1p) => {
            if x <= -1.0 {
                return Err(frame.cell_error(
                    name,
                    i,
                    format!("log1p needs values above -1, not {x}"),
                ));
            }
            x = x.ln_1p();
        }
        Some(FittedReshape::Power(lambda)) => x = stats::yeo_johnson(x, lambda),
        Some(FittedReshape::BoxCox(lambda)) => {
            if x <= 0.0 {
                return Err(frame.cell_error(
                    name,
                    i,
                    format!("Box-Cox needs positive values, not {x}"),
                ));
            }
            x = stats::box_cox(x, lambda);
        }
    }
    Ok(x)
}

/// One category into its `slots`.
fn category(
    frame: &Frame,
    name: &str,
    i: usize,
    cell: Option<&str>,
    steps: &CategorySteps,
    slots: &mut [f64],
) -> Result<()> {
    let value = cell.unwrap_or(&steps.fill);
    let index = match steps.categories.binary_search_by(|c| c.as_str().cmp(value)) {
        Ok(k) => k,
        Err(_) if steps.unknown == Unknown::Reserved => steps.categories.len(),
        Err(_) => {
            return Err(frame.cell_error(
                name,
                i,
                format!(
                    "`{value}` is a category unseen in training (seen: {}); to map unseen \
                     categories to a reserved slot, fit with TablePipeline::unknown(Unknown::Reserved)",
                    steps.categories.join(", ")
                ),
            ));
        }
    };
    match steps.encoding {
        Encoding::Ordinal => slots[0] = index as f64,
        Encoding::OneHot => {
            slots.fill(0.0);
            slots[index] = 1.0;
        }
    }
    Ok(())
}

/// Column `c` of `frame` as `kind`: numbers read from text, categories from
/// numbers, dates from text; anything else is an error that says how to read it.
fn convert(frame: &Frame, c: &Column, kind: Kind) -> Result<Values> {
    Ok(match kind {
        Kind::Number => Values::Numbers(numbers_of(frame, c)?),
        Kind::Category | Kind::Text => Values::Strings(strings_of(frame, c)?),
        Kind::Date => match c.cells() {
            Cells::Dates(v) => Values::Dates(v.clone()),
            Cells::Strings(v) => Values::Dates(
                v.iter()
                    .enumerate()
                    .map(|(i, s)| match s {
                        None => Ok(None),
                        Some(s) => Date::parse(s).map(Some).ok_or_else(|| {
                            frame.cell_error(
                                c.name(),
                                i,
                                format!("`{s}` is not a date (YYYY-MM-DD), as in training"),
                            )
                        }),
                    })
                    .collect::<Result<_>>()?,
            ),
            Cells::Numbers(_) => return Err(kind_error(frame, c, kind)),
        },
    })
}

fn kind_error(frame: &Frame, c: &Column, kind: Kind) -> Error {
    frame.column_error(
        c.name(),
        format!(
            "is a {} column here but a {} column in training; read the rows with \
             FittedPipeline::read_options",
            c.kind().name(),
            kind.name()
        ),
    )
}

/// The numbers of column `c`, reading text cells as numbers.
fn numbers_of(frame: &Frame, c: &Column) -> Result<Vec<Option<f64>>> {
    match c.cells() {
        Cells::Numbers(v) => Ok(v.clone()),
        Cells::Strings(v) => v
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                None => Ok(None),
                Some(s) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .map(Some)
                    .ok_or_else(|| {
                        frame.cell_error(
                            c.name(),
                            i,
                            format!(
                                "`{s}` is not a number, and the column held numbers in training"
                            ),
                        )
                    }),
            })
            .collect(),
        Cells::Dates(_) => Err(kind_error(frame, c, Kind::Number)),
    }
}

/// The strings of column `c`, writing numbers and dates as text.
fn strings_of(frame: &Frame, c: &Column) -> Result<Vec<Option<String>>> {
    let _ = frame;
    Ok(match c.cells() {
        Cells::Strings(v) => v.clone(),
        Cells::Numbers(v) => v.iter().map(|x| x.map(|x| x.to_string())).collect(),
        Cells::Dates(v) => v.iter().map(|d| d.map(|d| d.to_string())).collect(),
    })
}
