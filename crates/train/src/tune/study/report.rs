//! A study's results: the CSV table of its trials, the parameters' importance, and
//! the plots of the objective by trial and of the importance.

use super::{Study, TrialRecord, TrialState};

/// `text` as a CSV field: quoted when it holds a comma, a quote or a line break.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Ranks of `xs` (1-based, ties given their mean rank).
fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut r = vec![0.0; xs.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && xs[order[j + 1]] == xs[order[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = mean;
        }
        i = j + 1;
    }
    r
}

/// Pearson's correlation of `a` and `b`; 0 when either is constant.
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

impl Study {
    /// The parameters seen in the trials, in the order first seen.
    fn param_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for p in self.trials.iter().flat_map(|t| &t.params) {
            if !names.contains(&p.name) {
                names.push(p.name.clone());
            }
        }
        names
    }

    /// The trials as a CSV table: `number,state,value,seconds`, one column a
    /// parameter (its value as the user reads it), then `error`.
    pub fn csv(&self) -> String {
        let names = self.param_names();
        let mut out = String::from("number,state,value,seconds");
        for n in &names {
            out.push(',');
            out.push_str(&field(n));
        }
        out.push_str(",error\n");
        for t in &self.trials {
            let state = format!("{:?}", t.state).to_lowercase();
            let value = t.value.map_or(String::new(), |v| v.to_string());
            out.push_str(&format!("{},{state},{value},{:.3}", t.number, t.seconds));
            for n in &names {
                out.push(',');
                out.push_str(&field(&t.param(n).unwrap_or_default()));
            }
            out.push(',');
            out.push_str(&field(t.error.as_deref().unwrap_or("")));
            out.push('\n');
        }
        out
    }

    /// Each parameter's importance: the absolute Spearman correlation between its
    /// value (a category's index; the logarithm for a log range, which ranks alike)
    /// and the objective over the complete trials, scaled to sum to 1, largest first.
    /// A cheap, monotone-only stand-in for Optuna's fANOVA: a parameter whose best
    /// value lies mid-range, or a category, can score low and still matter.
    pub fn importance(&self) -> Vec<(String, f64)> {
        let complete: Vec<&TrialRecord> = self
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.value.is_some_and(f64::is_finite))
            .collect();
        let mut out: Vec<(String, f64)> = Vec::new();
        for name in self.param_names() {
            let pairs: Vec<(f64, f64)> = complete
                .iter()
                .filter_map(|t| {
                    let p = t.params.iter().find(|p| p.name == name)?;
                    Some((p.value, t.value?))
                })
                .collect();
            if pairs.len() < 3 {
                continue;
            }
            let xs: Vec<f64> = pairs.iter().map(|p| p.0).collect();
            let ys: Vec<f64> = pairs.iter().map(|p| p.1).collect();
            out.push((name, correlation(&ranks(&xs), &ranks(&ys)).abs()));
        }
        let total: f64 = out.iter().map(|p| p.1).sum();
        if total > 0.0 {
            out.iter_mut().for_each(|p| p.1 /= total);
        }
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

#[cfg(feature = "plots")]
impl Study {
    /// Draws each finished trial's value (complete and pruned, apart) and the best so
    /// far against the trial's number, as a PNG at `path`.
    pub fn plot_objective(&self, path: impl AsRef<std::path::Path>) -> crate::Result<()> {
        use crate::tune::plot::{Series, XyChart};
        let path = path.as_ref();
        let points = |state: TrialState| -> Vec<(f64, f64)> {
            self.trials
                .iter()
                .filter(|t| t.state == state)
                .filter_map(|t| Some((t.number as f64, t.value?)))
                .collect()
        };
        let complete = points(TrialState::Complete);
        if complete.is_empty() {
            return Err(crate::tune::plot::empty(path, "complete trial"));
        }
        let mut best: Option<f64> = None;
        let best_so_far = complete
            .iter()
            .map(|&(x, y)| {
                if best.is_none_or(|b| self.direction.better(y, b)) {
                    best = Some(y);
                }
                (x, best.unwrap_or(y))
            })
            .collect();
        XyChart {
            title: &format!("study {}: objective by trial", self.name),
            x_desc: "trial",
            y_desc: "objective",
            log_x: false,
            series: vec![
                Series {
                    label: "complete".into(),
                    points: complete,
                    line: false,
                },
                Series {
                    label: "pruned (last value)".into(),
                    points: points(TrialState::Pruned),
                    line: false,
                },
                Series {
                    label: "best so far".into(),
                    points: best_so_far,
                    line: true,
                },
            ],
            marks: Vec::new(),
        }
        .write(path)
    }

    /// Draws [`Study::importance`] as bars, as a PNG at `path`.
    pub fn plot_importance(&self, path: impl AsRef<std::path::Path>) -> crate::Result<()> {
        let path = path.as_ref();
        let importance = self.importance();
        if importance.is_empty() {
            return Err(crate::tune::plot::empty(
                path,
                "parameter of 3 complete trials or more",
            ));
        }
        crate::tune::plot::bars(
            &format!("study {}: parameter importance", self.name),
            "|Spearman correlation| with the objective, normalised",
            &importance,
            path,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_share_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
        assert!((correlation(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
        assert_eq!(correlation(&[1.0, 1.0], &[2.0, 4.0]), 0.0);
    }

    #[test]
    fn fields_with_commas_are_quoted() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(field("plain"), "plain");
    }
}
