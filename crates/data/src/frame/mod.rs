//! Tables of typed columns, as real files hold them: numbers, categories, free text
//! and dates, with missing cells kept as missing.
//!
//! A [`Frame`] is read from a CSV file with a header ([`Frame::read_csv`]) or from a
//! JSON array of records ([`Frame::read_json`], what APIs and pandas'
//! `to_json(orient="records")` give). Each column's [`Kind`] is inferred from its
//! cells, or set with [`ReadOptions::kind`]; the cells that match a missing marker
//! (`NA`, empty, `?`, `null`, ... see [`ReadOptions::missing`]) are missing, not
//! errors. [`Frame::describe`] summarises it as pandas' `describe()` does, and a
//! [`TablePipeline`](crate::TablePipeline) cleans it into the numbers a model takes.
//!
//! ```
//! use kiln_data::frame::{Frame, Kind, ReadOptions};
//!
//! let csv = b"species,island,bill_length_mm,sex\nAdelie,Torgersen,39.1,male\nGentoo,Biscoe,NA,female\nAdelie,Dream,40.3,NA\n";
//! let frame = Frame::parse_csv(csv, "penguins.csv", &ReadOptions::new().kind("island", Kind::Category))?;
//! assert_eq!(frame.len(), 3);
//! let bill = frame.column("bill_length_mm").ok_or("no bill length")?;
//! assert_eq!((bill.kind(), bill.missing()), (Kind::Number, 1));
//! println!("{}", frame.describe());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A column whose cells change kind part-way (a number column with a stray word)
//! is an error that names the column, the row and the line, and says how to read
//! it instead.

mod date;
mod delimited;
mod describe;
mod infer;
mod records;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::read;

pub use date::Date;
pub(crate) use describe::name_width;
pub use describe::{ColumnSummary, Description};

/// The cells read as missing unless [`ReadOptions::missing`] says otherwise (JSON's
/// `null` always is).
pub const DEFAULT_MISSING: [&str; 8] = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "?"];

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Real numbers.
    Number,
    /// A few distinct labels (`island`: Biscoe, Dream, Torgersen), encoded for a model.
    Category,
    /// Free text with many distinct values (a name), left out of a model's inputs.
    Text,
    /// Calendar dates (`1970-01-01`), expanded to numbers for a model.
    Date,
}

impl Kind {
    /// The kind's name as the report and the saved pipeline write it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Number => "number",
            Kind::Category => "category",
            Kind::Text => "text",
            Kind::Date => "date",
        }
    }

    /// The kind named `name` (as [`Kind::name`] writes it).
    pub fn from_name(name: &str) -> Option<Kind> {
        [Kind::Number, Kind::Category, Kind::Text, Kind::Date]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// The cells of a column; `None` is a missing cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Cells {
    /// Of a [`Kind::Number`] column.
    Numbers(Vec<Option<f64>>),
    /// Of a [`Kind::Category`] or [`Kind::Text`] column.
    Strings(Vec<Option<String>>),
    /// Of a [`Kind::Date`] column.
    Dates(Vec<Option<Date>>),
}

impl Cells {
    /// The number of cells.
    pub fn len(&self) -> usize {
        match self {
            Cells::Numbers(v) => v.len(),
            Cells::Strings(v) => v.len(),
            Cells::Dates(v) => v.len(),
        }
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether cell `i` is missing.
    pub fn is_missing(&self, i: usize) -> bool {
        match self {
            Cells::Numbers(v) => v[i].is_none(),
            Cells::Strings(v) => v[i].is_none(),
            Cells::Dates(v) => v[i].is_none(),
        }
    }

    fn select(&self, rows: &[usize]) -> Cells {
        match self {
            Cells::Numbers(v) => Cells::Numbers(rows.iter().map(|&r| v[r]).collect()),
            Cells::Strings(v) => Cells::Strings(rows.iter().map(|&r| v[r].clone()).collect()),
            Cells::Dates(v) => Cells::Dates(rows.iter().map(|&r| v[r]).collect()),
        }
    }
}

/// A named column of one kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    name: String,
    kind: Kind,
    cells: Cells,
}

impl Column {
    /// A column of `kind`; the cells must be the ones the kind holds
    /// ([`Cells::Strings`] for categories and text).
    pub fn new(name: impl Into<String>, kind: Kind, cells: Cells) -> Result<Self> {
        let name = name.into();
        let fits = matches!(
            (kind, &cells),
            (Kind::Number, Cells::Numbers(_))
                | (Kind::Category | Kind::Text, Cells::Strings(_))
                | (Kind::Date, Cells::Dates(_))
        );
        if !fits {
            return Err(Error::Config(format!(
                "column `{name}`: a {} column cannot hold {}",
                kind.name(),
                match cells {
                    Cells::Numbers(_) => "numbers",
                    Cells::Strings(_) => "strings",
                    Cells::Dates(_) => "dates",
                }
            )));
        }
        if let Cells::Numbers(v) = &cells
            && let Some(i) = v.iter().position(|x| x.is_some_and(|x| !x.is_finite()))
        {
            return Err(Error::Config(format!(
                "column `{name}`: cell {i} is not a finite number; give None for a missing cell"
            )));
        }
        Ok(Self { name, kind, cells })
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The cells.
    pub fn cells(&self) -> &Cells {
        &self.cells
    }

    /// The number of cells.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The number of missing cells.
    pub fn missing(&self) -> usize {
        (0..self.len())
            .filter(|&i| self.cells.is_missing(i))
            .count()
    }

    /// The numbers, for a number column.
    pub fn numbers(&self) -> Option<&[Option<f64>]> {
        match &self.cells {
            Cells::Numbers(v) => Some(v),
            _ => None,
        }
    }

    /// The strings, for a category or text column.
    pub fn strings(&self) -> Option<&[Option<String>]> {
        match &self.cells {
            Cells::Strings(v) => Some(v),
            _ => None,
        }
    }

    /// The dates, for a date column.
    pub fn dates(&self) -> Option<&[Option<Date>]> {
        match &self.cells {
            Cells::Dates(v) => Some(v),
            _ => None,
        }
    }

    /// The distinct values of a category or text column, sorted, with their counts.
    pub fn counts(&self) -> Vec<(String, usize)> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for s in self.strings().unwrap_or_default().iter().flatten() {
            *counts.entry(s.as_str()).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(s, n)| (s.to_string(), n))
            .collect()
    }
}

/// Where a row came from: its data row (1-based, the header not counted; the
/// record of a JSON file) and its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The data row, from 1.
    pub row: usize,
    /// The line of the file where it starts, from 1.
    pub line: usize,
}

/// How to read a table: the delimiter, the missing markers, the kinds to force.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadOptions {
    delimiter: u8,
    missing: Vec<String>,
    kinds: Vec<(String, Kind)>,
    max_categories: usize,
    /// Whether a kind may name a column the file lacks (the options a fitted
    /// pipeline gives, for rows without the target or the columns left out).
    absent_kinds: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            missing: DEFAULT_MISSING.iter().map(|s| s.to_string()).collect(),
            kinds: Vec::new(),
            max_categories: 32,
            absent_kinds: false,
        }
    }
}

impl ReadOptions {
    /// A comma as delimiter, [`DEFAULT_MISSING`] as missing markers, every kind
    /// inferred.
    pub fn new() -> Self {
        Self::default()
    }

    /// The field separator of a CSV file (default `,`; `b';'`, `b'\t'`).
    #[must_use]
    pub fn delimiter(mut self, d: u8) -> Self {
        self.delimiter = d;
        self
    }

    /// The cells that mean "missing", instead of [`DEFAULT_MISSING`]; compared with
    /// each cell's text without surrounding white space. JSON's `null` is always
    /// missing.
    #[must_use]
    pub fn missing<S: Into<String>>(mut self, markers: impl IntoIterator<Item = S>) -> Self {
        self.missing = markers.into_iter().map(Into::into).collect();
        self
    }

    /// One more missing marker (`"-"`, `"unknown"`).
    #[must_use]
    pub fn also_missing(mut self, marker: impl Into<String>) -> Self {
        self.missing.push(marker.into());
        self
    }

    /// Reads column `name` as `kind` instead of inferring it: a zip code as a
    /// category, a year as a number. A cell that does not fit is an error.
    #[must_use]
    pub fn kind(mut self, name: impl Into<String>, kind: Kind) -> Self {
        let name = name.into();
        self.kinds.retain(|(n, _)| *n != name);
        self.kinds.push((name, kind));
        self
    }

    /// The most distinct values a column of words may have to be inferred as a
    /// category (default 32); with more it is text.
    #[must_use]
    pub fn max_categories(mut self, n: usize) -> Self {
        self.max_categories = n;
        self
    }

    /// The missing markers.
    pub fn missing_markers(&self) -> &[String] {
        &self.missing
    }

    /// The kinds set by [`ReadOptions::kind`], in order.
    pub fn kinds(&self) -> &[(String, Kind)] {
        &self.kinds
    }

    pub(crate) fn allow_absent_kinds(mut self) -> Self {
        self.absent_kinds = true;
        self
    }

    fn is_missing(&self, text: &str) -> bool {
        let t = text.trim();
        self.missing.iter().any(|m| m == t)
    }
}

/// A table of named, typed columns of equal length.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    source: PathBuf,
    columns: Vec<Column>,
    origins: Vec<Origin>,
    missing: Vec<String>,
}

/// A cell as read, before its column's kind is known.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Raw {
    Missing,
    /// Text from a CSV field or a JSON string.
    Text(String),
    /// A JSON number, as written.
    Number(String),
    /// A JSON boolean.
    Bool(bool),
}

/// A cell as read, with the line it is on.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RawCell {
    pub(crate) raw: Raw,
    pub(crate) line: usize,
}

impl Frame {
    /// Reads a CSV file (plain or gzipped) whose first line names the columns.
    pub fn read_csv(path: impl AsRef<Path>, options: &ReadOptions) -> Result<Frame> {
        let path = path.as_ref();
        Self::parse_csv(&read::read_file(path)?, path, options)
    }

    /// Parses CSV text with a header; `source` names it in errors.
    pub fn parse_csv(
        bytes: &[u8],
        source: impl AsRef<Path>,
        options: &ReadOptions,
    ) -> Result<Frame> {
        let source = source.as_ref();
        let (names, rows, origins) = delimited::parse(bytes, source, options)?;
        infer::build(source, names, rows, origins, options)
    }

    /// Reads a JSON file (plain or gzipped) holding an array of records, one object
    /// of `column: value` a row; a key a record lacks is a missing cell.
    pub fn read_json(path: impl AsRef<Path>, options: &ReadOptions) -> Result<Frame> {
        let path = path.as_ref();
        Self::parse_json(&read::read_file(path)?, path, options)
    }

    /// Parses a JSON array of records; `source` names it in errors.
    pub fn parse_json(
        bytes: &[u8],
        source: impl AsRef<Path>,
        options: &ReadOptions,
    ) -> Result<Frame> {
        let source = source.as_ref();
        let (names, rows, origins) = records::parse(bytes, source, options)?;
        infer::build(source, names, rows, origins, options)
    }

    /// A frame of `columns` built in code (rows numbered from 1, no lines);
    /// `source` names it in errors.
    pub fn new(source: impl AsRef<Path>, columns: Vec<Column>) -> Result<Frame> {
        let source = source.as_ref().to_path_buf();
        let len = columns.first().map_or(0, Column::len);
        for (i, c) in columns.iter().enumerate() {
            if c.len() != len {
                return Err(Error::Column {
                    path: source,
                    column: c.name.clone(),
                    message: format!("holds {} cells, the first column {len}", c.len()),
                });
            }
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(Error::Column {
                    path: source,
                    column: c.name.clone(),
                    message: "appears twice".into(),
                });
            }
        }
        let origins = (1..=len).map(|row| Origin { row, line: 0 }).collect();
        Ok(Frame {
            source,
            columns,
            origins,
            missing: ReadOptions::default().missing,
        })
    }

    /// The file (or name) it was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// The columns, in the file's order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Where each row came from.
    pub fn origins(&self) -> &[Origin] {
        &self.origins
    }

    /// The missing markers it was read with.
    pub fn missing_markers(&self) -> &[String] {
        &self.missing
    }

    /// The rows at `rows`, in that order (a part of a split).
    pub fn select(&self, rows: &[usize]) -> Result<Frame> {
        let len = self.len();
        if let Some(&index) = rows.iter().find(|&&r| r >= len) {
            return Err(Error::Index { index, len });
        }
        Ok(Frame {
            source: self.source.clone(),
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    kind: c.kind,
                    cells: c.cells.select(rows),
                })
                .collect(),
            origins: rows.iter().map(|&r| self.origins[r]).collect(),
            missing: self.missing.clone(),
        })
    }

    /// The rows whose cell in column `name` is not missing (the rows with a target,
    /// before a split).
    pub fn drop_missing(&self, name: &str) -> Result<Frame> {
        let column = self.require(name)?;
        let keep: Vec<usize> = (0..self.len())
            .filter(|&i| !column.cells.is_missing(i))
            .collect();
        self.select(&keep)
    }

    /// The classes of a category column as labels `0..k`, in the sorted order of its
    /// values (the order a [`TablePipeline`](crate::TablePipeline) gives its
    /// classes), for a stratified split. A missing cell is an error: drop those rows
    /// first ([`Frame::drop_missing`]).
    pub fn labels(&self, name: &str) -> Result<Vec<u32>> {
        let column = self.require(name)?;
        let Some(strings) = column.strings() else {
            return Err(self.column_error(
                name,
                format!(
                    "is a {} column; class labels come from a category column",
                    column.kind.name()
                ),
            ));
        };
        let classes: Vec<String> = column.counts().into_iter().map(|(s, _)| s).collect();
        strings
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Some(s) => Ok(classes.binary_search(s).unwrap_or(0) as u32),
                None => Err(self.cell_error(
                    name,
                    i,
                    "is missing; drop the rows without a class first (Frame::drop_missing)",
                )),
            })
            .collect()
    }

    /// Per column: its kind, count, missing cells, distinct values and most frequent
    /// one, the categories seen, and the range and quartiles of numbers and dates.
    pub fn describe(&self) -> Description {
        describe::describe(self)
    }

    /// The column named `name`, or an error listing the columns there are.
    pub(crate) fn require(&self, name: &str) -> Result<&Column> {
        self.column(name).ok_or_else(|| {
            self.column_error(
                name,
                format!(
                    "no such column; the columns are {}",
                    self.names()
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// An error about the cell of column `name` in row `i` (an index into this frame).
    pub(crate) fn cell_error(&self, name: &str, i: usize, message: impl Into<String>) -> Error {
        let origin = self.origins[i];
        Error::Cell {
            path: self.source.clone(),
            column: name.to_string(),
            row: origin.row,
            line: origin.line,
            message: message.into(),
        }
    }

    /// An error about column `name` as a whole.
    pub(crate) fn column_error(&self, name: &str, message: impl Into<String>) -> Error {
        Error::Column {
            path: self.source.clone(),
            column: name.to_string(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests;
