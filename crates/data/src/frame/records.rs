//! A JSON array of records: one object a row, its keys the columns.

use std::path::Path;

use super::delimited::Parsed;
use super::{Origin, Raw, RawCell, ReadOptions};
use crate::error::{Error, Result};
use crate::json::{self, Value};

const SHAPE_HINT: &str = "a table in JSON is an array of records, `[{\"column\": value, ...}, ...]`, \
                          as pandas' to_json(orient=\"records\") writes it";

pub(super) fn parse(bytes: &[u8], source: &Path, options: &ReadOptions) -> Result<Parsed> {
    let table_error = |message: String| Error::Table {
        path: source.to_path_buf(),
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        table_error(format!("not UTF-8 text (byte {} of the file)", at + 1))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(Error::Empty {
            path: source.to_path_buf(),
        });
    }
    let root = json::parse(text).map_err(|e| Error::Json {
        path: source.to_path_buf(),
        line: e.line,
        column: e.column,
        message: e.message,
    })?;
    let Value::Array(items) = root.value else {
        return Err(table_error(format!(
            "is not an array of records: it holds {} (line {}); {SHAPE_HINT}",
            root.value.describe(),
            root.line
        )));
    };
    if items.is_empty() {
        return Err(table_error("the array holds no records".into()));
    }
    // The columns: every key, in the order they first appear.
    let mut names: Vec<String> = Vec::new();
    for (r, item) in items.iter().enumerate() {
        let Value::Object(fields) = &item.value else {
            return Err(table_error(format!(
                "record {} (line {}) is {}, not an object; {SHAPE_HINT}",
                r + 1,
                item.line,
                item.value.describe()
            )));
        };
        for (key, _) in fields {
            if !names.contains(key) {
                names.push(key.clone());
            }
        }
    }
    let mut rows = Vec::with_capacity(items.len());
    let mut origins = Vec::with_capacity(items.len());
    for (r, item) in items.into_iter().enumerate() {
        let Value::Object(fields) = item.value else {
            continue;
        };
        let mut cells: Vec<RawCell> = names
            .iter()
            .map(|_| RawCell {
                raw: Raw::Missing,
                line: item.line,
            })
            .collect();
        for (key, node) in fields {
            let c = names.iter().position(|n| *n == key).unwrap_or(0);
            let raw = match node.value {
                Value::Null => Raw::Missing,
                Value::Bool(b) => Raw::Bool(b),
                Value::Number(t) => Raw::Number(t),
                Value::String(s) if options.is_missing(&s) => Raw::Missing,
                Value::String(s) => Raw::Text(s),
                other => {
                    return Err(Error::Cell {
                        path: source.to_path_buf(),
                        column: key,
                        row: r + 1,
                        line: node.line,
                        message: format!(
                            "holds {}; a cell is a number, a string, a boolean or null",
                            other.describe()
                        ),
                    });
                }
            };
            cells[c] = RawCell {
                raw,
                line: node.line,
            };
        }
        rows.push(cells);
        origins.push(Origin {
            row: r + 1,
            line: item.line,
        });
    }
    Ok((names, rows, origins))
}
