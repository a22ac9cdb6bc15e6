//! A small JSON reader and writer: records files (an array of objects, as APIs and
//! pandas' `to_json(orient="records")` write them) and the saved form of a fitted
//! [`TablePipeline`](crate::TablePipeline).
//!
//! Every value remembers the line it starts on, so that an error can name the record
//! and the line; objects keep their keys in the file's order (a table's column order).
//! Numbers keep their text, so that `18` read as a category stays `18`.

use std::fmt::Write as _;

/// A JSON value and the line (1-based) where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub(crate) line: usize,
    pub(crate) value: Value,
}

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    /// The number as written.
    Number(String),
    String(String),
    Array(Vec<Node>),
    /// Keys in the order written.
    Object(Vec<(String, Node)>),
}

/// Where and why a text is not JSON.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SyntaxError {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 128;

impl Value {
    /// What kind of value this is, for messages (`an object`, `a number`).
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    /// The value at `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, n)| &n.value),
            _ => None,
        }
    }

    /// A number's value.
    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(text) => text.parse().ok(),
            _ => None,
        }
    }

    /// A string's text.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// An array's items.
    pub(crate) fn as_array(&self) -> Option<&[Node]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// A finite `f64` as a JSON number that reads back to the same bits (Rust's
    /// shortest round-trip form); JSON has no NaN or infinity, so those are `null`.
    pub(crate) fn number(v: f64) -> Value {
        if v.is_finite() {
            Value::Number(format!("{v:?}"))
        } else {
            Value::Null
        }
    }

    /// A string value.
    pub(crate) fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// An object of `fields`, in order.
    pub(crate) fn object<'a>(fields: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), Node { line: 0, value: v }))
                .collect(),
        )
    }

    /// An array of `items`.
    pub(crate) fn array(items: impl IntoIterator<Item = Value>) -> Value {
        Value::Array(
            items
                .into_iter()
                .map(|value| Node { line: 0, value })
                .collect(),
        )
    }

    /// The value as compact JSON text.
    pub(crate) fn to_json(&self) -> String {
        let mut out = String::new();
        write_value(self, &mut out);
        out
    }
}

fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(text) => out.push_str(text),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(&item.value, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (k, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_value(&item.value, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses one JSON document (surrounding white space allowed, nothing after it).
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut p = Parser {
        bytes: text.as_bytes(),
        text,
        pos: 0,
        line: 1,
        line_start: 0,
    };
    p.skip_space();
    let node = p.value(0)?;
    p.skip_space();
    if p.pos < p.bytes.len() {
        return Err(p.error("unexpected text after the JSON value"));
    }
    Ok(node)
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
    line: usize,
    line_start: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> SyntaxError {
        let column = self.text[self.line_start..self.pos.min(self.text.len())]
            .chars()
            .count()
            + 1;
        SyntaxError {
            line: self.line,
            column,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    self.line_start = self.pos;
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                _ => break,
            }
        }
    }

    fn expect(&mut self, b: u8, what: &str) -> Result<(), SyntaxError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn unexpected(&self, what: &str) -> SyntaxError {
        match self.text[self.pos.min(self.text.len())..].chars().next() {
            None => self.error(format!("the text ends where {what} was expected")),
            Some(c) => self.error(format!("expected {what}, found `{c}`")),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("nested more than {MAX_DEPTH} levels deep")));
        }
        let line = self.line;
        let value = match self.peek() {
            Some(b'{') => self.object(depth)?,
            Some(b'[') => self.array(depth)?,
            Some(b'"') => Value::String(self.string()?),
            Some(b't') => self.word("true", Value::Bool(true))?,
            Some(b'f') => self.word("false", Value::Bool(false))?,
            Some(b'n') => self.word("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => return Err(self.unexpected("a value")),
        };
        Ok(Node { line, value })
    }

    fn word(&mut self, word: &str, value: Value) -> Result<Value, SyntaxError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.unexpected("a value"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        self.pos += 1;
        let mut fields: Vec<(String, Node)> = Vec::new();
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(fields));
        }
        loop {
            self.skip_space();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected("a key in double quotes"));
            }
            let key = self.string()?;
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(self.error(format!("the key `{key}` appears twice in one object")));
            }
            self.skip_space();
            self.expect(b':', "`:` after a key")?;
            self.skip_space();
            let node = self.value(depth + 1)?;
            fields.push((key, node));
            self.skip_space();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(fields));
                }
                _ => return Err(self.unexpected("`,` or `}`")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_space();
            items.push(self.value(depth + 1)?);
            self.skip_space();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.unexpected("`,` or `]`")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.pos;
            while p.peek().is_some_and(|b| b.is_ascii_digit()) {
                p.pos += 1;
            }
            p.pos - s
        };
        if digits(self) == 0 {
            return Err(self.unexpected("a digit"));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(self.unexpected("a digit after the decimal point"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.unexpected("a digit in the exponent"));
            }
        }
        Ok(Value::Number(self.text[start..self.pos].to_string()))
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(stop) = rest.find(['"', '\\', '\n']) else {
                self.pos = self.text.len();
                return Err(self.error("a string is not closed"));
            };
            let chunk = &rest[..stop];
            if let Some(c) = chunk.chars().find(|c| (*c as u32) < 0x20) {
                self.pos += chunk.find(c).unwrap_or(0);
                return Err(self.error(format!(
                    "a control character (U+{:04X}) inside a string",
                    c as u32
                )));
            }
            out.push_str(chunk);
            self.pos += stop;
            match self.bytes[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\n' => return Err(self.error("a string is not closed before the line ends")),
                _ => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
            }
        }
    }

    fn escape(&mut self) -> Result<char, SyntaxError> {
        let Some(b) = self.peek() else {
            return Err(self.error("a string ends inside an escape"));
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = self.hex4()?;
                if (0xd800..0xdc00).contains(&high) {
                    if !self.bytes[self.pos..].starts_with(b"\\u") {
                        return Err(self.error("a lone high surrogate in a \\u escape"));
                    }
                    self.pos += 2;
                    let low = self.hex4()?;
                    if !(0xdc00..0xe000).contains(&low) {
                        return Err(self.error("a high surrogate without its low half"));
                    }
                    let c = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
                    char::from_u32(c).ok_or_else(|| self.error("an invalid \\u escape"))?
                } else {
                    char::from_u32(high).ok_or_else(|| self.error("a lone low surrogate"))?
                }
            }
            _ => {
                self.pos -= 1;
                return Err(
                    self.unexpected("an escape (\\\", \\\\, \\/, \\b, \\f, \\n, \\r, \\t, \\u)")
                );
            }
        })
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("a \\u escape needs four hex digits"))?;
        self.pos += 4;
        u32::from_str_radix(digits, 16)
            .map_err(|_| self.error("a \\u escape needs four hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_with_lines_and_order() {
        let text =
            "[\n {\"b\": 1.5e2, \"a\": null},\n {\"b\": \"x\\u00e9\\n\", \"a\": [true, false]}\n]";
        let node = parse(text).unwrap_or_else(|e| unreachable!("{e:?}"));
        let items = node.value.as_array().unwrap_or_default();
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].line, items[1].line), (2, 3));
        let Value::Object(fields) = &items[0].value else {
            unreachable!()
        };
        assert_eq!(fields[0].0, "b", "keys keep the file's order");
        assert_eq!(fields[0].1.value, Value::Number("1.5e2".into()));
        assert_eq!(items[1].value.get("b"), Some(&Value::String("xé\n".into())));
        assert_eq!(
            parse("\"\\ud83d\\ude00\"").map(|n| n.value),
            Ok(Value::String("😀".into()))
        );
    }

    #[test]
    fn round_trips_what_it_writes() {
        let v = Value::object([
            ("x", Value::number(0.1 + 0.2)),
            ("name", Value::string("a \"q\"\t\u{1}")),
            ("list", Value::array([Value::Null, Value::Bool(true)])),
        ]);
        let text = v.to_json();
        let back = parse(&text).unwrap_or_else(|e| unreachable!("{e:?}"));
        assert_eq!(back.value.get("x").and_then(Value::as_f64), Some(0.1 + 0.2));
        assert_eq!(
            back.value.get("name").and_then(Value::as_str),
            Some("a \"q\"\t\u{1}")
        );
        assert_eq!(Value::number(f64::NAN), Value::Null);
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let err = |t: &str| parse(t).err().unwrap_or_else(|| unreachable!("{t}"));
        let e = err("[\n  {\"a\": 1,}\n]");
        assert_eq!((e.line, e.column), (2, 11), "{e:?}");
        assert!(e.message.contains("a key in double quotes"), "{e:?}");
        assert!(err("[1, 2").message.contains("the text ends"));
        assert!(
            err("{\"a\": 1, \"a\": 2}")
                .message
                .contains("appears twice")
        );
        assert!(err("[01x]").message.contains("`,` or `]`"));
        assert!(err("\"abc").message.contains("not closed"));
        assert!(err("[1] 2").message.contains("after the JSON value"));
        assert!(err(&"[".repeat(200)).message.contains("nested"));
        assert!(err("[NaN]").message.contains("expected a value"));
    }
}
