//! CSV records with a header (RFC 4180): fields may be quoted, and a quoted field
//! may hold the delimiter, doubled quotes and line breaks.

use std::path::Path;

use super::{Origin, Raw, RawCell, ReadOptions};
use crate::error::{Error, Result};

/// One field as written.
struct Field {
    text: String,
    line: usize,
}

/// The header's names, each row's cells and each row's origin.
pub(super) type Parsed = (Vec<String>, Vec<Vec<RawCell>>, Vec<Origin>);

pub(super) fn parse(bytes: &[u8], source: &Path, options: &ReadOptions) -> Result<Parsed> {
    let err = |line: usize, column: usize, message: String| Error::Csv {
        path: source.to_path_buf(),
        line,
        column,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        let start = bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        err(
            line,
            1,
            format!("not UTF-8 text (byte {} of the line)", at - start + 1),
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let records = records(text, char::from(options.delimiter), source)?;
    let mut records = records.into_iter();
    let Some((header_line, header)) = records.next() else {
        return Err(Error::Empty {
            path: source.to_path_buf(),
        });
    };
    let mut names: Vec<String> = Vec::with_capacity(header.len());
    for (i, f) in header.iter().enumerate() {
        let name = match f.text.trim() {
            "" => format!("column_{}", i + 1),
            n => n.to_string(),
        };
        if names.contains(&name) {
            return Err(err(
                header_line,
                i + 1,
                format!("the header names column `{name}` twice"),
            ));
        }
        names.push(name);
    }
    let mut rows = Vec::new();
    let mut origins = Vec::new();
    for (line, fields) in records {
        if fields.len() != names.len() {
            return Err(err(
                line,
                fields.len().min(names.len()) + 1,
                format!(
                    "expected {} fields, as the header names, found {}",
                    names.len(),
                    fields.len()
                ),
            ));
        }
        let cells = fields
            .into_iter()
            .map(|f| RawCell {
                raw: if options.is_missing(&f.text) {
                    Raw::Missing
                } else {
                    Raw::Text(f.text)
                },
                line: f.line,
            })
            .collect();
        rows.push(cells);
        origins.push(Origin {
            row: origins.len() + 1,
            line,
        });
    }
    if rows.is_empty() {
        return Err(Error::Table {
            path: source.to_path_buf(),
            message: "the file holds a header but no rows".into(),
        });
    }
    Ok((names, rows, origins))
}

/// The records of `text` with the line each starts on; blank lines are skipped.
fn records(text: &str, delimiter: char, source: &Path) -> Result<Vec<(usize, Vec<Field>)>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    loop {
        // Skip blank lines.
        while let Some(&c) = chars.peek() {
            if c == '\n' {
                line += 1;
                chars.next();
            } else if c == '\r' {
                chars.next();
            } else {
                break;
            }
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let start = line;
        let mut fields = Vec::new();
        loop {
            let mut field = String::new();
            let field_line = line;
            // Leading blanks before an opening quote are allowed.
            while chars.peek().is_some_and(|&c| c == ' ' || c == '\t') && delimiter != ' ' {
                field.push(chars.next().unwrap_or(' '));
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                field.clear();
                loop {
                    match chars.next() {
                        None => {
                            return Err(Error::Csv {
                                path: source.to_path_buf(),
                                line: field_line,
                                column: fields.len() + 1,
                                message: "a quoted field is not closed".into(),
                            });
                        }
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
                // Only blanks may follow the closing quote.
                while let Some(&c) = chars.peek() {
                    if c == delimiter || c == '\n' || c == '\r' {
                        break;
                    }
                    if c != ' ' && c != '\t' {
                        return Err(Error::Csv {
                            path: source.to_path_buf(),
                            line,
                            column: fields.len() + 1,
                            message: format!(
                                "`{c}` after a quoted field's closing quote; a quote inside a \
                                 quoted field is written twice (\"\")"
                            ),
                        });
                    }
                    chars.next();
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == delimiter || c == '\n' || c == '\r' {
                        break;
                    }
                    field.push(c);
                    chars.next();
                }
                field = field.trim().to_string();
            }
            fields.push(Field {
                text: field,
                line: field_line,
            });
            match chars.next() {
                Some(c) if c == delimiter => continue,
                Some('\r') => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    line += 1;
                    break;
                }
                Some('\n') => {
                    line += 1;
                    break;
                }
                _ => break,
            }
        }
        out.push((start, fields));
    }
}
