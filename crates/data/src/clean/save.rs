//! A fitted pipeline as JSON, to travel with a model in its checkpoint: every
//! statistic, vocabulary and the column order, read back exactly (numbers are
//! written in their shortest form that reads back to the same `f64`).
//!
//! ```json
//! {"format": "kiln-table-pipeline", "version": 1,
//!  "target": {"name": "species", "kind": "category", "classes": ["Adelie", ...]},
//!  "missing_markers": ["", "NA", ...], "drop_rows_missing_over": 0.5, "drop_duplicates": false,
//!  "training": {"read": 275, "without_target": 0, "too_sparse": 2, "duplicates": 0, "kept": 273},
//!  "columns": [
//!    {"name": "island", "kind": "category", "missing": 0, "indicator": false, "role": "category",
//!     "categories": ["Biscoe", ...], "fill": "Biscoe", "encoding": "one_hot", "unknown": "reserved"},
//!    {"name": "bill_length_mm", "kind": "number", "missing": 2, "indicator": true, "role": "number",
//!     "steps": {"fill": 43.9, "clip": null, "reshape": null}},
//!    {"name": "Year", "kind": "date", ..., "role": "date", "year": {steps}, "day_of_year": {steps}},
//!    {"name": "Name", "kind": "text", ..., "role": "dropped", "why": "text"}],
//!  "features": ["island=Biscoe", ...],
//!  "scales": [null, ..., [43.9, 5.4], ...]}
//! ```
//!
//! `reshape` is `null`, `"log1p"` or `{"power": lambda}`; `why` is `"asked"`,
//! `"text"` or `{"missing": fraction}`; `scales` holds each feature's last step,
//! `[center, scale]` for `(x - center) / scale`, or `null`.

use super::{
    CategorySteps, Dropped, Encoding, FittedColumn, FittedPipeline, FittedReshape, FittedTarget,
    NumberSteps, Role, RowCounts, Unknown,
};
use crate::error::{Error, Result};
use crate::frame::Kind;
use crate::json::{self, Value};

const FORMAT: &str = "kiln-table-pipeline";
const VERSION: u64 = 1;

impl FittedPipeline {
    /// The pipeline as JSON text (the format is described in the module's source,
    /// `clean/save.rs`).
    pub fn to_json(&self) -> String {
        let strings = |v: &[String]| Value::array(v.iter().map(|s| Value::string(s.clone())));
        let count = |n: usize| Value::Number(n.to_string());
        let t = &self.training;
        Value::object([
            ("format", Value::string(FORMAT)),
            ("version", count(VERSION as usize)),
            (
                "target",
                Value::object([
                    ("name", Value::string(self.target.name.clone())),
                    ("kind", Value::string(self.target.kind.name())),
                    ("classes", strings(&self.target.classes)),
                ]),
            ),
            ("missing_markers", strings(&self.missing_markers)),
            (
                "drop_rows_missing_over",
                self.max_missing_row.map_or(Value::Null, Value::number),
            ),
            ("drop_duplicates", Value::Bool(self.drop_duplicates)),
            (
                "training",
                Value::object([
                    ("read", count(t.read)),
                    ("without_target", count(t.without_target)),
                    ("too_sparse", count(t.too_sparse)),
                    ("duplicates", count(t.duplicates)),
                    ("kept", count(t.kept)),
                ]),
            ),
            (
                "columns",
                Value::array(self.columns.iter().map(column_json)),
            ),
            ("features", strings(&self.features)),
            (
                "scales",
                Value::array(self.scales.iter().map(|s| pair_json(*s))),
            ),
        ])
        .to_json()
    }

    /// Reads what [`FittedPipeline::to_json`] wrote.
    ///
    /// # Errors
    /// [`Error::Config`] naming what is wrong when `text` is not such a pipeline.
    pub fn from_json(text: &str) -> Result<FittedPipeline> {
        let root = json::parse(text).map_err(|e| {
            bad(format!(
                "it is not JSON (line {}, character {}: {})",
                e.line, e.column, e.message
            ))
        })?;
        let v = &root.value;
        if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(bad(format!("its `format` is not `{FORMAT}`")));
        }
        let version = count(v, "version")?;
        if version != VERSION as usize {
            return Err(bad(format!(
                "it is version {version}; this kiln reads version {VERSION}"
            )));
        }
        let target = field(v, "target")?;
        let target = FittedTarget {
            name: string(target, "name")?,
            kind: kind(target)?,
            classes: strings(target, "classes")?,
        };
        let training = field(v, "training")?;
        let training = RowCounts {
            read: count(training, "read")?,
            without_target: count(training, "without_target")?,
            too_sparse: count(training, "too_sparse")?,
            duplicates: count(training, "duplicates")?,
            kept: count(training, "kept")?,
        };
        let max_missing_row = match field(v, "drop_rows_missing_over")? {
            Value::Null => None,
            n => Some(
                n.as_f64()
                    .ok_or_else(|| bad("its `drop_rows_missing_over` is not a number".into()))?,
            ),
        };
        let drop_duplicates = match field(v, "drop_duplicates")? {
            Value::Bool(b) => *b,
            _ => return Err(bad("its `drop_duplicates` is not a boolean".into())),
        };
        let columns = field(v, "columns")?
            .as_array()
            .ok_or_else(|| bad("its `columns` is not a list".into()))?
            .iter()
            .map(|n| parse_column(&n.value))
            .collect::<Result<Vec<_>>>()?;
        let features = strings(v, "features")?;
        let derived: Vec<String> = super::apply::feature_layout(&columns)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        if derived != features {
            return Err(bad(format!(
                "its columns give the features {derived:?}, but it lists {features:?}"
            )));
        }
        let scales = field(v, "scales")?
            .as_array()
            .ok_or_else(|| bad("its `scales` is not a list".into()))?
            .iter()
            .map(|n| pair(&Value::object([("scale", n.value.clone())]), "scale"))
            .collect::<Result<Vec<_>>>()?;
        if scales.len() != features.len() {
            return Err(bad(format!(
                "it lists {} scales for {} features",
                scales.len(),
                features.len()
            )));
        }
        Ok(FittedPipeline {
            target,
            columns,
            max_missing_row,
            drop_duplicates,
            missing_markers: strings(v, "missing_markers")?,
            training,
            features,
            scales,
        })
    }
}

fn bad(what: String) -> Error {
    Error::Config(format!("the saved table pipeline is not kiln's: {what}"))
}

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value> {
    v.get(key).ok_or_else(|| bad(format!("it lacks `{key}`")))
}

fn string(v: &Value, key: &str) -> Result<String> {
    field(v, key)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| bad(format!("its `{key}` is not a string")))
}

fn strings(v: &Value, key: &str) -> Result<Vec<String>> {
    field(v, key)?
        .as_array()
        .ok_or_else(|| bad(format!("its `{key}` is not a list")))?
        .iter()
        .map(|n| {
            n.value
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(format!("its `{key}` holds a value that is not a string")))
        })
        .collect()
}

fn count(v: &Value, key: &str) -> Result<usize> {
    match field(v, key)? {
        Value::Number(t) => t.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| bad(format!("its `{key}` is not a count")))
}

fn number(v: &Value, key: &str) -> Result<f64> {
    field(v, key)?
        .as_f64()
        .ok_or_else(|| bad(format!("its `{key}` is not a number")))
}

fn kind(v: &Value) -> Result<Kind> {
    let name = string(v, "kind")?;
    Kind::from_name(&name).ok_or_else(|| bad(format!("`{name}` is not a column kind")))
}

fn pair(v: &Value, key: &str) -> Result<Option<(f64, f64)>> {
    match field(v, key)? {
        Value::Null => Ok(None),
        Value::Array(items) => match items.as_slice() {
            [a, b] => match (a.value.as_f64(), b.value.as_f64()) {
                (Some(a), Some(b)) => Ok(Some((a, b))),
                _ => Err(bad(format!(
                    "its `{key}` holds a value that is not a number"
                ))),
            },
            _ => Err(bad(format!("its `{key}` is not a pair"))),
        },
        _ => Err(bad(format!("its `{key}` is not a pair or null"))),
    }
}

fn pair_json(p: Option<(f64, f64)>) -> Value {
    p.map_or(Value::Null, |(a, b)| {
        Value::array([Value::number(a), Value::number(b)])
    })
}

fn steps_json(s: &NumberSteps) -> Value {
    Value::object([
        ("fill", Value::number(s.fill)),
        ("clip", pair_json(s.clip)),
        (
            "reshape",
            match s.reshape {
                None => Value::Null,
                Some(FittedReshape::Log1p) => Value::string("log1p"),
                Some(FittedReshape::Power(l)) => Value::object([("power", Value::number(l))]),
                Some(FittedReshape::BoxCox(l)) => Value::object([("box_cox", Value::number(l))]),
            },
        ),
    ])
}

fn parse_steps(v: &Value) -> Result<NumberSteps> {
    let reshape = match field(v, "reshape")? {
        Value::Null => None,
        Value::String(s) if s == "log1p" => Some(FittedReshape::Log1p),
        r @ Value::Object(_) if r.get("box_cox").is_some() => {
            Some(FittedReshape::BoxCox(number(r, "box_cox")?))
        }
        r @ Value::Object(_) => Some(FittedReshape::Power(number(r, "power")?)),
        _ => {
            return Err(bad(
                "its `reshape` is not null, \"log1p\", {\"power\": ...} or {\"box_cox\": ...}"
                    .into(),
            ));
        }
    };
    Ok(NumberSteps {
        fill: number(v, "fill")?,
        clip: pair(v, "clip")?,
        reshape,
    })
}

fn column_json(c: &FittedColumn) -> Value {
    let mut fields = vec![
        ("name", Value::string(c.name.clone())),
        ("kind", Value::string(c.kind.name())),
        ("missing", Value::Number(c.missing.to_string())),
        ("indicator", Value::Bool(c.indicator)),
    ];
    match &c.role {
        Role::Dropped(why) => {
            fields.push(("role", Value::string("dropped")));
            fields.push((
                "why",
                match why {
                    Dropped::Asked => Value::string("asked"),
                    Dropped::Text => Value::string("text"),
                    Dropped::Missing(f) => Value::object([("missing", Value::number(*f))]),
                },
            ));
        }
        Role::Number(s) => {
            fields.push(("role", Value::string("number")));
            fields.push(("steps", steps_json(s)));
        }
        Role::Date { year, day_of_year } => {
            fields.push(("role", Value::string("date")));
            fields.push(("year", steps_json(year)));
            fields.push(("day_of_year", steps_json(day_of_year)));
        }
        Role::Category(s) => {
            fields.push(("role", Value::string("category")));
            fields.push((
                "categories",
                Value::array(s.categories.iter().map(|k| Value::string(k.clone()))),
            ));
            fields.push(("fill", Value::string(s.fill.clone())));
            fields.push((
                "encoding",
                Value::string(match s.encoding {
                    Encoding::OneHot => "one_hot",
                    Encoding::Ordinal => "ordinal",
                }),
            ));
            fields.push((
                "unknown",
                Value::string(match s.unknown {
                    Unknown::Reserved => "reserved",
                    Unknown::Error => "error",
                }),
            ));
        }
    }
    Value::object(fields)
}

fn parse_column(v: &Value) -> Result<FittedColumn> {
    let name = string(v, "name")?;
    let in_column = |e: Error| match e {
        Error::Config(m) => Error::Config(format!("{m} (column `{name}`)")),
        other => other,
    };
    let role = match string(v, "role")?.as_str() {
        "dropped" => Role::Dropped(match field(v, "why")? {
            Value::String(s) if s == "asked" => Dropped::Asked,
            Value::String(s) if s == "text" => Dropped::Text,
            w @ Value::Object(_) => Dropped::Missing(number(w, "missing").map_err(in_column)?),
            _ => return Err(in_column(bad("its `why` is not kiln's".into()))),
        }),
        "number" => Role::Number(parse_steps(field(v, "steps")?).map_err(in_column)?),
        "date" => Role::Date {
            year: parse_steps(field(v, "year")?).map_err(in_column)?,
            day_of_year: parse_steps(field(v, "day_of_year")?).map_err(in_column)?,
        },
        "category" => {
            let categories = strings(v, "categories").map_err(in_column)?;
            // Encoding looks categories up by binary search.
            if !categories.windows(2).all(|w| w[0] < w[1]) {
                return Err(in_column(bad(
                    "its categories are not sorted and distinct".into()
                )));
            }
            Role::Category(CategorySteps {
                categories,
                fill: string(v, "fill").map_err(in_column)?,
                encoding: match string(v, "encoding")?.as_str() {
                    "one_hot" => Encoding::OneHot,
                    "ordinal" => Encoding::Ordinal,
                    e => return Err(in_column(bad(format!("`{e}` is not an encoding")))),
                },
                unknown: match string(v, "unknown")?.as_str() {
                    "reserved" => Unknown::Reserved,
                    "error" => Unknown::Error,
                    u => return Err(in_column(bad(format!("`{u}` is not an unknown handling")))),
                },
            })
        }
        r => return Err(in_column(bad(format!("`{r}` is not a column role")))),
    };
    let indicator = match field(v, "indicator")? {
        Value::Bool(b) => *b,
        _ => return Err(in_column(bad("its `indicator` is not a boolean".into()))),
    };
    Ok(FittedColumn {
        kind: kind(v).map_err(in_column)?,
        missing: count(v, "missing").map_err(in_column)?,
        indicator,
        role,
        name,
    })
}
