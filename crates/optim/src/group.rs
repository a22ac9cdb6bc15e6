//! [`ParamGroup`]: tensors that an optimizer treats apart from the rest, selected by their
//! layer's kind or by a pattern on their name, with a weight decay and a learning-rate
//! scale of their own (PyTorch's `param_groups`).

use std::fmt;

/// Tensors with settings of their own, for
/// [`Optimizer::group`](crate::Optimizer::group): PyTorch's `param_groups` (a dict
/// with `params`, `lr` and `weight_decay`), selected by rule instead of by listing
/// the tensors.
///
/// A tensor belongs to a group when its layer's kind is one of the group's
/// [`kinds`](ParamGroup::kinds) (`BatchNorm`, `Conv2d`, `Dense`), *or* its key
/// `layer.name` matches one of the group's [`names`](ParamGroup::names) patterns (`*` any
/// run of characters, dots included; `?` one character): `*.bias`, `res2.*`,
/// `out.weight`. Of several groups the first that takes a tensor wins; tensors that
/// no group takes keep the optimizer's defaults.
///
/// - [`weight_decay`](ParamGroup::weight_decay) is all the decay the group's tensors get,
///   as PyTorch's per-group `weight_decay`: decoupled for
///   [`AdamW`](crate::AdamW) and [`Lion`](crate::Lion) (in place of the rule's
///   `weight_decay`), coupled (L2, in place of
///   [`Optimizer::weight_decay`](crate::Optimizer::weight_decay)) for every other
///   rule. Unset, the tensors get the optimizer's.
/// - [`learning_rate_scale`](ParamGroup::learning_rate_scale) multiplies the optimizer's
///   learning rate, fixed or scheduled, at every step, so one schedule drives every
///   group. PyTorch's per-group `lr` is this scale times the optimizer's rate; its
///   schedulers that scale each group's initial rate (`LambdaLR`, `StepLR`,
///   `OneCycleLR` with a `max_lr` per group in the same proportion, ...) keep that
///   proportion, as kiln's schedules do.
///
/// ```
/// use kiln_optim::{Optimizer, ParamGroup, Sgd};
///
/// // SGD with Nesterov momentum and L2 decay, but none on the batch-norm scales and
/// // shifts nor on any bias; the classifier at half the rate.
/// let optimizer = Optimizer::<kiln_kernels::Cpu>::new(Sgd { learning_rate: 0.1, momentum: 0.9, nesterov: true })
///     .weight_decay(5e-4)
///     .group(ParamGroup::new().kinds(["BatchNorm"]).names(["*.bias"]).weight_decay(0.0))
///     .group(ParamGroup::new().names(["out.*"]).learning_rate_scale(0.5));
/// assert_eq!(optimizer.groups().len(), 2);
///
/// let no_decay = &optimizer.groups()[0];
/// assert!(no_decay.selects("BatchNorm", "res2.bn", "weight"));
/// assert!(no_decay.selects("Conv2d", "res2.shortcut", "bias"));
/// assert!(!no_decay.selects("Conv2d", "res2.shortcut", "weight"));
/// // A tensor of both groups belongs to the first: `out.bias` gets no decay and the
/// // full rate.
/// assert!(no_decay.selects("Dense", "out", "bias"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ParamGroup {
    kinds: Vec<String>,
    names: Vec<String>,
    pub(crate) weight_decay: Option<f64>,
    pub(crate) learning_rate_scale: f64,
}

impl Default for ParamGroup {
    fn default() -> Self {
        Self::new()
    }
}

impl ParamGroup {
    /// A group that selects nothing yet, with the optimizer's weight decay and its
    /// full learning rate.
    pub fn new() -> Self {
        Self {
            kinds: Vec::new(),
            names: Vec::new(),
            weight_decay: None,
            learning_rate_scale: 1.0,
        }
    }

    /// Adds the tensors of every layer of these kinds (`BatchNorm`, `Conv2d`,
    /// `Dense`: the names `model!` uses).
    #[must_use]
    pub fn kinds<S: Into<String>>(mut self, kinds: impl IntoIterator<Item = S>) -> Self {
        self.kinds.extend(kinds.into_iter().map(Into::into));
        self
    }

    /// Adds the tensors whose key `layer.name` matches one of these patterns (`*` any
    /// run of characters, `?` one character): `*.bias`, `res2.*`, `bn?.weight`.
    #[must_use]
    pub fn names<S: Into<String>>(mut self, patterns: impl IntoIterator<Item = S>) -> Self {
        self.names.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// The group's weight decay, all the decay its tensors get (decoupled for
    /// `AdamW` and `Lion`, coupled for the other rules).
    #[must_use]
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }

    /// The group's learning rate as a multiple of the optimizer's (fixed or
    /// scheduled): PyTorch's per-group `lr` divided by the optimizer's.
    #[must_use]
    pub fn learning_rate_scale(mut self, scale: f64) -> Self {
        self.learning_rate_scale = scale;
        self
    }

    /// Whether the tensor `name` of layer `layer`, of kind `kind`, belongs to this
    /// group.
    pub fn selects(&self, kind: &str, layer: &str, name: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
            || self
                .names
                .iter()
                .any(|pattern| matches_key(pattern, layer, name))
    }

    /// Checks the selectors and settings; the message says which is wrong.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.kinds.is_empty() && self.names.is_empty() {
            return Err(format!(
                "{self} selects no tensor: give it kinds or name patterns"
            ));
        }
        if self.kinds.iter().chain(&self.names).any(String::is_empty) {
            return Err(format!("{self} has an empty kind or pattern"));
        }
        if let Some(wd) = self.weight_decay
            && !(wd >= 0.0 && wd.is_finite())
        {
            return Err(format!("{self}: weight decay must be >= 0, got {wd}"));
        }
        let scale = self.learning_rate_scale;
        if !(scale >= 0.0 && scale.is_finite()) {
            return Err(format!(
                "{self}: the learning-rate scale must be finite and >= 0, got {scale}"
            ));
        }
        Ok(())
    }
}

/// `group(kinds [BatchNorm], names [*.bias], weight_decay 0, learning_rate_scale 1)`:
/// what messages and saved optimizer states record of a group.
impl fmt::Display for ParamGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "group(kinds [{}], names [{}], weight_decay {}, learning_rate_scale {})",
            self.kinds.join(", "),
            self.names.join(", "),
            self.weight_decay
                .map_or_else(|| "default".to_string(), |wd| wd.to_string()),
            self.learning_rate_scale
        )
    }
}

/// Whether `layer.name` matches `pattern`, without building the key.
fn matches_key(pattern: &str, layer: &str, name: &str) -> bool {
    let key = layer.chars().chain(['.']).chain(name.chars());
    glob(
        &pattern.chars().collect::<Vec<_>>(),
        &key.collect::<Vec<_>>(),
    )
}

/// A glob match of `text` against `pattern` (`*` any run, `?` one character), by the
/// usual backtracking to the last star.
fn glob(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(pattern: &str, text: &str) -> bool {
        glob(
            &pattern.chars().collect::<Vec<_>>(),
            &text.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn globs_match_runs_and_single_characters() {
        assert!(g("*.bias", "conv1.bias"));
        assert!(g("*.bias", "res2.shortcut.bias"));
        assert!(!g("*.bias", "conv1.bias_extra"));
        assert!(!g("*.bias", "conv1.weight"));
        assert!(g("res2.*", "res2.shortcut.weight"));
        assert!(!g("res2.*", "res20.a.weight"));
        assert!(g("bn?.weight", "bn1.weight"));
        assert!(!g("bn?.weight", "bn12.weight"));
        assert!(g("*", ""));
        assert!(g("**a*", "xxa"));
        assert!(g("a*b*c", "aXbYbZc"));
        assert!(!g("a*b*c", "aXbYbZ"));
        assert!(g("out.weight", "out.weight"));
        assert!(!g("out.weight", "out.weights"));
        assert!(!g("", "x"));
    }

    #[test]
    fn a_tensor_is_selected_by_kind_or_by_name() {
        let group = ParamGroup::new()
            .kinds(["BatchNorm"])
            .names(["*.bias", "head.*"]);
        assert!(group.selects("BatchNorm", "bn1", "weight"));
        assert!(group.selects("Conv2d", "conv1", "bias"));
        assert!(group.selects("Dense", "head", "weight"));
        assert!(!group.selects("Conv2d", "conv1", "weight"));
        assert!(
            !group.selects("batchnorm", "bn1", "weight"),
            "kinds are exact"
        );
    }

    #[test]
    fn bad_groups_say_what_is_wrong() {
        let cases = [
            (ParamGroup::new(), "selects no tensor"),
            (ParamGroup::new().names([""]), "empty kind or pattern"),
            (
                ParamGroup::new().kinds(["Dense"]).weight_decay(-1.0),
                "weight decay",
            ),
            (
                ParamGroup::new()
                    .kinds(["Dense"])
                    .learning_rate_scale(f64::NAN),
                "learning-rate scale",
            ),
        ];
        for (group, needle) in cases {
            let err = group.check().unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        assert!(
            ParamGroup::new()
                .kinds(["Dense"])
                .learning_rate_scale(0.0)
                .check()
                .is_ok()
        );
    }

    #[test]
    fn the_description_names_every_selector_and_setting() {
        let group = ParamGroup::new()
            .kinds(["BatchNorm"])
            .names(["*.bias"])
            .weight_decay(0.0)
            .learning_rate_scale(0.5);
        assert_eq!(
            group.to_string(),
            "group(kinds [BatchNorm], names [*.bias], weight_decay 0, learning_rate_scale 0.5)"
        );
        assert_eq!(
            ParamGroup::new().names(["a.*"]).to_string(),
            "group(kinds [], names [a.*], weight_decay default, learning_rate_scale 1)"
        );
    }
}
