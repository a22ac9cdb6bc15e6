//! Delimited numeric tables (CSV, TSV, space-separated), plain or gzipped, such as
//! the UCI tables that scikit-learn packages: every cell a number, one column
//! optionally the label. Errors give the file, line and column of the bad cell.
//!
//! Fields are trimmed and may be wrapped in double quotes; quoted fields cannot hold
//! the delimiter. Blank lines are skipped.

use std::path::{Path, PathBuf};

use crate::dataset::{InMemory, Inputs, Targets};
use crate::error::{Error, Result};
use crate::read;

/// How fields are separated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delimiter {
    /// One byte (`b','`, `b';'`, `b'\t'`).
    Byte(u8),
    /// Any run of spaces and tabs.
    Whitespace,
}

/// What the first line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// No header: every line is data.
    None,
    /// A header of column names, skipped (and kept in [`Table::header`]).
    Names,
    /// scikit-learn's packaged form `rows,features,class names...`: the counts are
    /// checked against the data, and the names become the class names.
    Sklearn,
}

/// Which column holds the label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelColumn {
    /// The first.
    First,
    /// The last.
    Last,
    /// The column at this 0-based index.
    Index(usize),
}

/// What the label column means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelKind {
    /// A class: a non-negative integer, below `classes` when given, else the number
    /// of classes is the largest label + 1.
    Class {
        /// The number of classes, when known.
        classes: Option<usize>,
    },
    /// A real-valued regression target.
    Real,
}

/// How to read a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// The field separator (default `,`).
    pub delimiter: Delimiter,
    /// The first line (default: data).
    pub header: Header,
    /// The label column (default: the last).
    pub label: LabelColumn,
    /// What the label is (default: a class).
    pub kind: LabelKind,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: Delimiter::Byte(b','),
            header: Header::None,
            label: LabelColumn::Last,
            kind: LabelKind::Class { classes: None },
        }
    }
}

impl CsvOptions {
    /// The same options with another delimiter.
    pub fn delimiter(mut self, d: Delimiter) -> Self {
        self.delimiter = d;
        self
    }

    /// The same options with another header kind.
    pub fn header(mut self, h: Header) -> Self {
        self.header = h;
        self
    }

    /// The same options with another label column.
    pub fn label(mut self, l: LabelColumn) -> Self {
        self.label = l;
        self
    }

    /// The same options with another label kind.
    pub fn kind(mut self, k: LabelKind) -> Self {
        self.kind = k;
        self
    }
}

/// A table of numbers, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The file it came from.
    pub path: PathBuf,
    /// The header's fields, when there was one.
    pub header: Option<Vec<String>>,
    /// The number of columns.
    pub cols: usize,
    /// The cells, `rows() * cols` of them.
    pub values: Vec<f32>,
    /// The 1-based line of each row, for error messages.
    pub lines: Vec<usize>,
}

impl Table {
    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.lines.len()
    }

    /// Column `c` as a vector.
    pub fn column(&self, c: usize) -> Vec<f32> {
        self.values
            .iter()
            .skip(c)
            .step_by(self.cols.max(1))
            .copied()
            .collect()
    }
}

/// Reads a table from a file (plain or gzipped).
pub fn read_table(path: &Path, options: &CsvOptions) -> Result<Table> {
    let bytes = read::read_file(path)?;
    parse_table(&bytes, path, options)
}

/// Parses a table held in `bytes` (uncompressed); `path` names it in errors.
pub fn parse_table(bytes: &[u8], path: &Path, options: &CsvOptions) -> Result<Table> {
    let err = |line: usize, column: usize, message: String| Error::Csv {
        path: path.to_path_buf(),
        line,
        column,
        message,
    };
    let mut header = None;
    let mut cols = 0;
    let mut values = Vec::new();
    let mut lines = Vec::new();
    let mut fields: Vec<&str> = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let text = std::str::from_utf8(raw).map_err(|e| {
            err(
                line,
                1,
                format!("not UTF-8 text (byte {} of the line)", e.valid_up_to() + 1),
            )
        })?;
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            continue;
        }
        fields.clear();
        match options.delimiter {
            Delimiter::Whitespace => fields.extend(text.split_ascii_whitespace()),
            Delimiter::Byte(d) => fields.extend(text.split(char::from(d)).map(unquote)),
        }
        if options.header != Header::None && header.is_none() {
            header = Some(fields.iter().map(|f| f.to_string()).collect());
            continue;
        }
        if lines.is_empty() {
            cols = fields.len();
        } else if fields.len() != cols {
            return Err(err(
                line,
                fields.len().min(cols) + 1,
                format!("expected {cols} fields, found {}", fields.len()),
            ));
        }
        for (c, f) in fields.iter().enumerate() {
            values.push(number(f).map_err(|m| err(line, c + 1, m))?);
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Table {
        path: path.to_path_buf(),
        header,
        cols,
        values,
        lines,
    })
}

fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .map_or(f, str::trim)
}

fn number(field: &str) -> std::result::Result<f32, String> {
    if field.is_empty() {
        return Err("empty cell".to_string());
    }
    match field.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("`{field}` is not a finite number")),
        Err(_) => Err(format!("`{field}` is not a number")),
    }
}

/// A data set from a file: the label column as targets, the rest as features.
pub fn load(path: &Path, options: &CsvOptions) -> Result<InMemory> {
    let bytes = read::read_file(path)?;
    parse(&bytes, path, options)
}

/// A data set from a table held in `bytes` (uncompressed).
pub fn parse(bytes: &[u8], path: &Path, options: &CsvOptions) -> Result<InMemory> {
    let table = parse_table(bytes, path, options)?;
    let label = match options.label {
        LabelColumn::First => 0,
        LabelColumn::Last => table.cols - 1,
        LabelColumn::Index(i) if i < table.cols => i,
        LabelColumn::Index(i) => {
            return Err(Error::Csv {
                path: path.to_path_buf(),
                line: table.lines[0],
                column: table.cols,
                message: format!(
                    "label column {} does not exist; rows have {} fields",
                    i + 1,
                    table.cols
                ),
            });
        }
    };
    if table.cols < 2 {
        return Err(Error::Csv {
            path: path.to_path_buf(),
            line: table.lines[0],
            column: 1,
            message: "a row needs at least one feature besides the label".to_string(),
        });
    }
    let features: Vec<f32> = table
        .values
        .chunks_exact(table.cols)
        .flat_map(|row| {
            row.iter()
                .enumerate()
                .filter(|&(c, _)| c != label)
                .map(|(_, &v)| v)
        })
        .collect();
    let targets = targets_from(&table, label, options.kind)?;
    let mut data = InMemory::new(vec![table.cols - 1], Inputs::F32(features), targets)?;
    if options.header == Header::Sklearn {
        data = apply_sklearn_header(&table, data)?;
    }
    Ok(data)
}

/// A data set from a features file and a targets file of as many rows (scikit-learn's
/// diabetes data): every column of the first is a feature, every column of the second
/// a target (one column when `kind` is a class).
pub fn load_pair(
    features: &Path,
    targets: &Path,
    options: &CsvOptions,
    kind: LabelKind,
) -> Result<InMemory> {
    let x = read_table(features, options)?;
    let y = read_table(targets, options)?;
    if x.rows() != y.rows() {
        return Err(Error::Mismatch {
            message: format!(
                "{} holds {} rows but {} holds {}",
                features.display(),
                x.rows(),
                targets.display(),
                y.rows()
            ),
        });
    }
    let t = match kind {
        LabelKind::Real => Targets::Real {
            values: y.values.clone(),
            width: y.cols,
        },
        LabelKind::Class { .. } => {
            if y.cols != 1 {
                return Err(Error::Csv {
                    path: targets.to_path_buf(),
                    line: y.lines[0],
                    column: 2,
                    message: format!("class targets need one column, found {}", y.cols),
                });
            }
            targets_from(&y, 0, kind)?
        }
    };
    InMemory::new(vec![x.cols], Inputs::F32(x.values), t)
}

/// The targets in column `label` of `table`.
fn targets_from(table: &Table, label: usize, kind: LabelKind) -> Result<Targets> {
    let column = table.column(label);
    match kind {
        LabelKind::Real => Ok(Targets::Real {
            values: column,
            width: 1,
        }),
        LabelKind::Class { classes } => {
            let mut labels = Vec::with_capacity(column.len());
            for (&v, &line) in column.iter().zip(&table.lines) {
                let bad = |message: String| Error::Csv {
                    path: table.path.clone(),
                    line,
                    column: label + 1,
                    message,
                };
                if v < 0.0 || v.fract() != 0.0 || v > 16_777_216.0 {
                    return Err(bad(format!(
                        "label {v} is not a class (a non-negative integer)"
                    )));
                }
                let l = v as u32;
                if let Some(n) = classes
                    && l as usize >= n
                {
                    return Err(bad(format!("label {l} is outside the {n} classes 0..{n}")));
                }
                labels.push(l);
            }
            let classes =
                classes.unwrap_or_else(|| labels.iter().max().map_or(0, |&m| m as usize + 1));
            Ok(Targets::Classes { labels, classes })
        }
    }
}

/// Checks scikit-learn's `rows,features,names...` header and takes the class names.
fn apply_sklearn_header(table: &Table, data: InMemory) -> Result<InMemory> {
    let header = table.header.clone().unwrap_or_default();
    let bad = |column: usize, message: String| Error::Csv {
        path: table.path.clone(),
        line: table.lines[0].saturating_sub(1).max(1),
        column,
        message,
    };
    let count = |c: usize| -> Result<usize> {
        header.get(c).and_then(|f| f.parse().ok()).ok_or_else(|| {
            bad(
                c + 1,
                "a scikit-learn header starts with the row and feature counts".into(),
            )
        })
    };
    let (rows, features) = (count(0)?, count(1)?);
    if rows != table.rows() {
        return Err(bad(
            1,
            format!(
                "the header promises {rows} rows, the file holds {}",
                table.rows()
            ),
        ));
    }
    if features != table.cols - 1 {
        return Err(bad(
            2,
            format!(
                "the header promises {features} features, rows hold {}",
                table.cols - 1
            ),
        ));
    }
    let names: Vec<String> = header[2..].to_vec();
    if let Targets::Classes { classes, .. } = data.targets()
        && !names.is_empty()
        && names.len() < *classes
    {
        return Err(bad(
            3,
            format!("{} class names for {classes} classes", names.len()),
        ));
    }
    Ok(data.with_class_names(names))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.csv")
    }

    #[test]
    fn parses_labels_headers_and_delimiters() {
        let text = b"3,2,no,yes\n1.5,2,0\n\n3,4e1,1\r\n-1,\"0.5\",1\n";
        let opts = CsvOptions::default().header(Header::Sklearn);
        let d = parse(text, p(), &opts).unwrap();
        assert_eq!(d.floats().unwrap(), &[1.5, 2.0, 3.0, 40.0, -1.0, 0.5]);
        assert_eq!(d.labels().unwrap(), &[0, 1, 1]);
        assert_eq!(d.class_names(), &["no".to_string(), "yes".to_string()]);

        let ws = b"1 2  3\n4\t5 6\n";
        let opts = CsvOptions::default()
            .delimiter(Delimiter::Whitespace)
            .label(LabelColumn::First)
            .kind(LabelKind::Real);
        let d = parse(ws, p(), &opts).unwrap();
        assert_eq!(d.floats().unwrap(), &[2.0, 3.0, 5.0, 6.0]);
        assert_eq!(
            d.targets(),
            &Targets::Real {
                values: vec![1.0, 4.0],
                width: 1
            }
        );
    }

    #[test]
    fn bad_cells_give_line_and_column() {
        let o = CsvOptions::default();
        let err = parse(b"1,2,0\n1,x,1\n", p(), &o).unwrap_err();
        assert_eq!(err.to_string(), "t.csv:2:2: `x` is not a number");
        let err = parse(b"1,2,0\n1,2\n", p(), &o).unwrap_err();
        assert_eq!(err.to_string(), "t.csv:2:3: expected 3 fields, found 2");
        let err = parse(b"1,,0\n", p(), &o).unwrap_err();
        assert!(err.to_string().contains("t.csv:1:2: empty cell"), "{err}");
        let err = parse(b"1,2,0.5\n", p(), &o).unwrap_err();
        assert!(err.to_string().contains("t.csv:1:3: label 0.5"), "{err}");
        let o3 = o.kind(LabelKind::Class { classes: Some(2) });
        let err = parse(b"1,2,0\n1,2,2\n", p(), &o3).unwrap_err();
        assert!(
            err.to_string().contains("t.csv:2:3: label 2 is outside"),
            "{err}"
        );
        assert!(matches!(parse(b"\n \n", p(), &o), Err(Error::Empty { .. })));
        assert!(parse(b"1,inf,0\n", p(), &o).is_err());
        assert!(
            parse(b"1,2\xff,0\n", p(), &o)
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
        let err = parse(b"1,2\n", p(), &o.label(LabelColumn::Index(5))).unwrap_err();
        assert!(err.to_string().contains("label column 6"), "{err}");
        let bad_header = CsvOptions::default().header(Header::Sklearn);
        let err = parse(b"5,1,a,b\n1,0\n", p(), &bad_header).unwrap_err();
        assert!(err.to_string().contains("promises 5 rows"), "{err}");
    }
}
