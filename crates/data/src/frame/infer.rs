//! A column's kind from its cells (or as the options force it), and the frame built
//! from the raw cells of a file.

use std::path::Path;

use super::{Cells, Column, Date, Frame, Kind, Origin, Raw, RawCell, ReadOptions};
use crate::error::{Error, Result};

/// A frame from the raw cells of `rows` (one per origin, `names.len()` cells each).
pub(super) fn build(
    source: &Path,
    names: Vec<String>,
    rows: Vec<Vec<RawCell>>,
    origins: Vec<Origin>,
    options: &ReadOptions,
) -> Result<Frame> {
    for (name, _) in &options.kinds {
        if !names.contains(name) && !options.absent_kinds {
            return Err(Error::Column {
                path: source.to_path_buf(),
                column: name.clone(),
                message: format!(
                    "ReadOptions::kind names a column the file does not have; its columns are {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    let mut by_column: Vec<Vec<RawCell>> = vec![Vec::with_capacity(rows.len()); names.len()];
    for row in rows {
        for (c, cell) in row.into_iter().enumerate() {
            by_column[c].push(cell);
        }
    }
    let columns = names
        .into_iter()
        .zip(by_column)
        .map(|(name, cells)| {
            let forced = options.kinds.iter().find(|(n, _)| *n == name).map(|k| k.1);
            convert(source, &origins, name, cells, forced, options)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Frame {
        source: source.to_path_buf(),
        columns,
        origins,
        missing: options.missing.clone(),
    })
}

/// A cell's number, when it is one.
fn as_number(raw: &Raw) -> Option<f64> {
    match raw {
        Raw::Number(t) | Raw::Text(t) => t.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
        Raw::Missing | Raw::Bool(_) => None,
    }
}

/// A cell's date, when it is one.
fn as_date(raw: &Raw) -> Option<Date> {
    match raw {
        Raw::Text(t) => Date::parse(t.trim()),
        _ => None,
    }
}

/// A cell's text, as a category or text column holds it.
fn as_text(raw: &Raw) -> Option<String> {
    match raw {
        Raw::Missing => None,
        Raw::Text(t) => Some(t.trim().to_string()),
        Raw::Number(t) => Some(t.clone()),
        Raw::Bool(b) => Some(b.to_string()),
    }
}

/// Column `name` of `kind` (inferred when `forced` is `None`) from its raw cells.
fn convert(
    source: &Path,
    origins: &[Origin],
    name: String,
    cells: Vec<RawCell>,
    forced: Option<Kind>,
    options: &ReadOptions,
) -> Result<Column> {
    let bad = |i: usize, message: String| Error::Cell {
        path: source.to_path_buf(),
        column: name.clone(),
        row: origins[i].row,
        line: cells[i].line,
        message,
    };
    let present: Vec<usize> = (0..cells.len())
        .filter(|&i| cells[i].raw != Raw::Missing)
        .collect();
    let numbers = present
        .iter()
        .filter(|&&i| as_number(&cells[i].raw).is_some())
        .count();
    let dates = present
        .iter()
        .filter(|&&i| as_date(&cells[i].raw).is_some())
        .count();
    let shown = |raw: &Raw| match raw {
        Raw::Text(t) | Raw::Number(t) => format!("`{t}`"),
        Raw::Bool(b) => format!("`{b}`"),
        Raw::Missing => "a missing cell".into(),
    };
    let kind = match forced {
        Some(kind) => kind,
        None if numbers == present.len() => Kind::Number,
        None if dates == present.len() => Kind::Date,
        None if numbers * 2 > present.len() || dates * 2 > present.len() => {
            let (what, count, fits): (&str, usize, fn(&Raw) -> bool) =
                if numbers * 2 > present.len() {
                    ("a number", numbers, |r| as_number(r).is_some())
                } else {
                    ("a date (YYYY-MM-DD)", dates, |r| as_date(r).is_some())
                };
            let &i = present
                .iter()
                .find(|&&i| !fits(&cells[i].raw))
                .unwrap_or(&0);
            return Err(bad(
                i,
                format!(
                    "{} is not {what}, but {count} of the column's {} other cells are: if it marks a \
                     missing cell, add it to the missing markers (ReadOptions::also_missing); to \
                     keep the words, read the column as a category (ReadOptions::kind)",
                    shown(&cells[i].raw),
                    present.len() - 1,
                ),
            ));
        }
        None => {
            let mut distinct: Vec<String> = present
                .iter()
                .filter_map(|&i| as_text(&cells[i].raw))
                .collect();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() <= options.max_categories && distinct.len() < present.len() {
                Kind::Category
            } else {
                Kind::Text
            }
        }
    };
    let column_cells = match kind {
        Kind::Number => Cells::Numbers(
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| match &c.raw {
                    Raw::Missing => Ok(None),
                    raw => as_number(raw).map(Some).ok_or_else(|| {
                        bad(
                            i,
                            format!(
                                "{} is not a number, and the column is read as numbers",
                                shown(raw)
                            ),
                        )
                    }),
                })
                .collect::<Result<_>>()?,
        ),
        Kind::Date => Cells::Dates(
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| match &c.raw {
                    Raw::Missing => Ok(None),
                    raw => as_date(raw).map(Some).ok_or_else(|| {
                        bad(
                            i,
                            format!(
                                "{} is not a date (YYYY-MM-DD), and the column is read as dates",
                                shown(raw)
                            ),
                        )
                    }),
                })
                .collect::<Result<_>>()?,
        ),
        Kind::Category | Kind::Text => {
            Cells::Strings(cells.iter().map(|c| as_text(&c.raw)).collect())
        }
    };
    Ok(Column {
        name,
        kind,
        cells: column_cells,
    })
}
