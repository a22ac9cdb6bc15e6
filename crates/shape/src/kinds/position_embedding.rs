//! `PositionEmbedding(context, sinusoidal)`: a vector for each position of a
//! sequence, added to the step there.

use crate::kind::{ArgDef, ArgType, LayerKind, Spec, Traits, struct_literal};
use crate::{Shape, ShapeError, SpecError};

/// Position embeddings added to a `[time, width]` sequence: a learned table of
/// `context` rows (GPT's), or the fixed sinusoids of Vaswani et al. (2017).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PositionEmbeddingSpec {
    /// Positions the table holds: the longest sequence the layer takes.
    pub context: usize,
    /// Fixed sines and cosines instead of a learned table.
    pub sinusoidal: bool,
}

/// `PositionEmbedding`.
pub static POSITION_EMBEDDING: LayerKind = LayerKind {
    name: "PositionEmbedding",
    aliases: &["PositionalEmbedding", "PositionalEncoding"],
    about: "adds a learned (or sinusoidal) vector for each position of a `[time, width]` sequence",
    args: &[
        ArgDef::required("context", ArgType::Count).aliases(&[
            "block_size",
            "max_len",
            "sequence_length",
        ]),
        ArgDef::optional("sinusoidal", ArgType::Flag, "false").named_only(),
    ],
    runtime: "::kiln::nn::layers::position_embedding::PositionEmbedding<B>",
    spec: |args| {
        Box::new(PositionEmbeddingSpec {
            context: args.count("context").unwrap_or(0),
            sinusoidal: args.flag("sinusoidal").unwrap_or(false),
        })
    },
};

impl PositionEmbeddingSpec {
    /// The sinusoidal table's first `time` rows of `width`:
    /// `sin(t / 10000^(2i / width))` at column `2i`, its cosine at `2i + 1`.
    pub fn sinusoids(time: usize, width: usize) -> Vec<f32> {
        let mut table = vec![0.0f32; time * width];
        for (t, row) in table.chunks_exact_mut(width.max(1)).enumerate() {
            for (i, v) in row.iter_mut().enumerate() {
                let angle = t as f64 / 10_000f64.powf((i / 2 * 2) as f64 / width as f64);
                *v = if i % 2 == 0 { angle.sin() } else { angle.cos() } as f32;
            }
        }
        table
    }
}

impl Spec for PositionEmbeddingSpec {
    fn kind_name(&self) -> &'static str {
        POSITION_EMBEDDING.name
    }

    fn validate(&self) -> Vec<SpecError> {
        if self.context == 0 {
            vec![SpecError {
                argument: "context",
                message: "must be at least 1, got 0".to_string(),
            }]
        } else {
            Vec::new()
        }
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let Some((time, _)) = input.as_sequence() else {
            return Err(ShapeError::new("a `[time, width]` sequence", *input));
        };
        if time > self.context {
            return Err(ShapeError::new(
                format!("sequences of at most {} steps", self.context),
                *input,
            )
            .hint(format!(
                "the sequence of {time} steps is longer than the position table's {} rows: make `context` at least {time}",
                self.context
            )));
        }
        Ok(*input)
    }

    fn parameter_count(&self, input: &Shape) -> Option<usize> {
        if self.sinusoidal {
            return Some(0);
        }
        self.context.checked_mul(*input.dims().last()?)
    }

    fn traits(&self) -> Traits {
        Traits {
            accumulates_input_grad: true,
            ..Traits::default()
        }
    }

    fn rust(&self) -> String {
        struct_literal(
            "::kiln::shape::PositionEmbeddingSpec",
            &[("context", &self.context), ("sinusoidal", &self.sinusoidal)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequence_longer_than_the_table_is_refused_with_the_numbers() {
        let spec = PositionEmbeddingSpec {
            context: 64,
            sinusoidal: false,
        };
        let input = Shape::new(&[64, 128]);
        assert_eq!(spec.output_for(&input).unwrap(), input);
        assert_eq!(spec.parameter_count(&input), Some(64 * 128));
        let err = spec.output_for(&Shape::new(&[65, 128])).unwrap_err();
        assert_eq!(
            err.hint.as_deref(),
            Some(
                "the sequence of 65 steps is longer than the position table's 64 rows: make `context` at least 65"
            )
        );
    }
}
