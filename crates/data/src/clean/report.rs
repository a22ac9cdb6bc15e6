//! What a fitted pipeline does, column by column, in words: the report a user
//! reads before training to see what was cleaned.

use std::fmt;

use super::{
    CategorySteps, Dropped, Encoding, FittedPipeline, FittedReshape, NumberSteps, Role, Unknown,
};
use crate::frame::Kind;

fn short(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        format!("{v:.4e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" { "0".into() } else { s.into() }
    }
}

fn number_steps(steps: &NumberSteps, missing: usize) -> Vec<String> {
    let mut parts = Vec::new();
    if missing > 0 {
        parts.push(format!("{missing} missing -> {}", short(steps.fill)));
    }
    if let Some((low, high)) = steps.clip {
        parts.push(format!("clipped to [{}, {}]", short(low), short(high)));
    }
    match steps.reshape {
        Some(FittedReshape::Log1p) => parts.push("log1p".into()),
        Some(FittedReshape::Power(l)) => parts.push(format!("Yeo-Johnson (lambda {})", short(l))),
        Some(FittedReshape::BoxCox(l)) => parts.push(format!("Box-Cox (lambda {})", short(l))),
        None => {}
    }
    parts
}

fn category_steps(steps: &CategorySteps, missing: usize) -> Vec<String> {
    let mut parts = Vec::new();
    if missing > 0 {
        parts.push(format!("{missing} missing -> {}", steps.fill));
    }
    let unknown = match steps.unknown {
        Unknown::Reserved => "unseen -> reserved slot",
        Unknown::Error => "unseen -> error",
    };
    let encoding = match steps.encoding {
        Encoding::OneHot => "one-hot",
        Encoding::Ordinal => "ordinal",
    };
    parts.push(format!(
        "{encoding} of {} ({}), {unknown}",
        steps.categories.len(),
        steps.categories.join(", ")
    ));
    parts
}

impl fmt::Display for FittedPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.training;
        writeln!(
            f,
            "cleaning fitted on {} of {} training rows ({} without a target, {} missing too many cells, {} duplicates dropped)",
            t.kept, t.read, t.without_target, t.too_sparse, t.duplicates
        )?;
        match self.target.kind {
            Kind::Category => writeln!(
                f,
                "target `{}`: {} classes ({})",
                self.target.name,
                self.target.classes.len(),
                self.target.classes.join(", ")
            )?,
            _ => writeln!(f, "target `{}`: a number", self.target.name)?,
        }
        let name_w = crate::frame::name_width(self.columns.iter().map(|c| c.name.as_str()));
        writeln!(f, "{:<name_w$}  {:<8}  cleaning", "column", "kind")?;
        for c in &self.columns {
            let mut parts = match &c.role {
                Role::Dropped(Dropped::Asked) => vec!["left out, as asked".to_string()],
                Role::Dropped(Dropped::Text) => vec!["left out: free text".to_string()],
                Role::Dropped(Dropped::Missing(m)) => {
                    vec![format!("left out: {:.1} % missing", m * 100.0)]
                }
                Role::Number(steps) => number_steps(steps, c.missing),
                Role::Date { year, day_of_year } => {
                    let mut p = vec!["year and day of the year".to_string()];
                    p.extend(
                        number_steps(year, c.missing)
                            .into_iter()
                            .map(|s| format!("year {s}")),
                    );
                    p.extend(
                        number_steps(day_of_year, 0)
                            .into_iter()
                            .map(|s| format!("day {s}")),
                    );
                    p
                }
                Role::Category(steps) => category_steps(steps, c.missing),
            };
            if c.indicator {
                parts.push(format!("indicator {}.missing", c.name));
            }
            if parts.is_empty() {
                parts.push("as it is".into());
            }
            writeln!(
                f,
                "{:<name_w$}  {:<8}  {}",
                c.name,
                c.kind.name(),
                parts.join("; ")
            )?;
        }
        let scaled: Vec<String> = self
            .features
            .iter()
            .zip(&self.scales)
            .filter_map(|(name, s)| {
                s.map(|(center, scale)| format!("{name} ({}, {})", short(center), short(scale)))
            })
            .collect();
        if !scaled.is_empty() {
            writeln!(
                f,
                "scaled last, (x - center) / scale: {}",
                scaled.join(", ")
            )?;
        }
        write!(
            f,
            "{} features: {}",
            self.features.len(),
            self.features.join(", ")
        )
    }
}
