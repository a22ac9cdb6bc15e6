//! `MultiHeadAttention(heads, causal, bias)`: self-attention over a `[time, width]`
//! sequence, `heads` heads of `width / heads` values each.

use crate::kind::{ArgDef, ArgType, LayerKind, Spec, Traits, struct_literal};
use crate::{Shape, ShapeError, SpecError};

/// Multi-head self-attention (Vaswani et al., 2017) with its input and output
/// projections.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionSpec {
    /// Heads; they must divide the input's width.
    pub heads: usize,
    /// Each step attends only to itself and the steps before it.
    pub causal: bool,
    /// Biases on the projections.
    pub bias: bool,
}

/// `MultiHeadAttention`.
pub static MULTI_HEAD_ATTENTION: LayerKind = LayerKind {
    name: "MultiHeadAttention",
    aliases: &["MultiheadAttention", "SelfAttention", "Attention"],
    about: "self-attention of `heads` heads over a `[time, width]` sequence, projected back to `width`",
    args: &[
        ArgDef::required("heads", ArgType::Count).aliases(&["num_heads"]),
        ArgDef::optional("causal", ArgType::Flag, "false")
            .aliases(&["is_causal", "use_causal_mask"])
            .named_only(),
        ArgDef::optional("bias", ArgType::Flag, "true")
            .aliases(&["use_bias"])
            .named_only(),
    ],
    runtime: "::kiln::nn::layers::attention::MultiHeadAttention<B>",
    spec: |args| {
        Box::new(AttentionSpec {
            heads: args.count("heads").unwrap_or(0),
            causal: args.flag("causal").unwrap_or(false),
            bias: args.flag("bias").unwrap_or(true),
        })
    },
};

/// The head counts near `heads` that divide `width`, and the widths near `width`
/// that `heads` divides, for the error's suggestion.
fn suggestion(heads: usize, width: usize) -> String {
    let divisors: Vec<usize> = (1..=width).filter(|&h| width.is_multiple_of(h)).collect();
    let below = divisors.iter().rev().find(|&&h| h < heads);
    let above = divisors.iter().find(|&&h| h > heads);
    let counts = match (below, above) {
        (Some(b), Some(a)) => format!("use {b} or {a} heads"),
        (Some(h), None) | (None, Some(h)) => format!("use {h} heads"),
        (None, None) => "use 1 head".to_string(),
    };
    let up = width.div_ceil(heads) * heads;
    format!("{counts}, or width {up}")
}

impl Spec for AttentionSpec {
    fn kind_name(&self) -> &'static str {
        MULTI_HEAD_ATTENTION.name
    }

    fn validate(&self) -> Vec<SpecError> {
        if self.heads == 0 {
            vec![SpecError {
                argument: "heads",
                message: "must be at least 1, got 0".to_string(),
            }]
        } else {
            Vec::new()
        }
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let Some((_, width)) = input.as_sequence() else {
            return Err(ShapeError::new("a `[time, width]` sequence", *input));
        };
        if self.heads == 0 || !width.is_multiple_of(self.heads) {
            return Err(ShapeError::new(
                format!("a width that its {} heads divide", self.heads),
                *input,
            )
            .hint(format!(
                "{} heads do not divide width {width}: {}",
                self.heads,
                suggestion(self.heads.max(1), width)
            )));
        }
        Ok(*input)
    }

    fn parameter_count(&self, input: &Shape) -> Option<usize> {
        let width = input.dims().last().copied()?;
        let weights = width.checked_mul(width)?.checked_mul(4)?;
        Some(weights + if self.bias { 4 * width } else { 0 })
    }

    fn traits(&self) -> Traits {
        // The layer keeps its projections and attention statistics itself.
        Traits {
            reads_input: true,
            accumulates_input_grad: true,
            ..Traits::default()
        }
    }

    fn rust(&self) -> String {
        struct_literal(
            "::kiln::shape::AttentionSpec",
            &[
                ("heads", &self.heads),
                ("causal", &self.causal),
                ("bias", &self.bias),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(heads: usize) -> AttentionSpec {
        AttentionSpec {
            heads,
            causal: true,
            bias: true,
        }
    }

    #[test]
    fn keeps_the_shape_and_counts_four_projections() {
        let input = Shape::new(&[64, 128]);
        assert_eq!(spec(4).output_for(&input).unwrap(), input);
        assert_eq!(
            spec(4).parameter_count(&input),
            Some(4 * 128 * 128 + 4 * 128)
        );
    }

    #[test]
    fn heads_that_do_not_divide_the_width_get_the_nearest_that_do() {
        let err = spec(6).output_for(&Shape::new(&[64, 128])).unwrap_err();
        assert_eq!(
            err.hint.as_deref(),
            Some("6 heads do not divide width 128: use 4 or 8 heads, or width 132")
        );
        assert!(spec(4).output_for(&Shape::new(&[128])).is_err());
    }
}
