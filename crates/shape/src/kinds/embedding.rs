//! `Embedding(vocabulary, width)`: a learned vector for each token id.

use crate::kind::{ArgDef, ArgType, LayerKind, Spec, Traits, at_least_one, struct_literal};
use crate::{Shape, ShapeError, SpecError};

/// A table of `vocabulary` rows of `width` values; a sequence of token ids becomes the
/// sequence of their rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbeddingSpec {
    /// Rows of the table: token ids must lie below it.
    pub vocabulary: usize,
    /// Values a row: the features of each time step of the output.
    pub width: usize,
}

/// `Embedding`.
pub static EMBEDDING: LayerKind = LayerKind {
    name: "Embedding",
    aliases: &["Embed"],
    about: "a learned row of the table for each token id: `tokens[t] of v` to `[t, width]`",
    args: &[
        ArgDef::required("vocabulary", ArgType::Count).aliases(&["input_dim", "num_embeddings"]),
        ArgDef::required("width", ArgType::Count).aliases(&["output_dim", "embedding_dim"]),
    ],
    runtime: "::kiln::nn::layers::embedding::Embedding<B>",
    spec: |args| {
        Box::new(EmbeddingSpec {
            vocabulary: args.count("vocabulary").unwrap_or(0),
            width: args.count("width").unwrap_or(0),
        })
    },
};

impl Spec for EmbeddingSpec {
    fn kind_name(&self) -> &'static str {
        EMBEDDING.name
    }

    fn validate(&self) -> Vec<SpecError> {
        let mut errors = Vec::new();
        at_least_one(&mut errors, "vocabulary", self.vocabulary);
        at_least_one(&mut errors, "width", self.width);
        errors
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let expected = || format!("token ids below {}", self.vocabulary);
        let Some(vocabulary) = input.vocabulary() else {
            return Err(ShapeError::new(expected(), *input)
                .hint("declare the input as token ids: `input: tokens[time] of vocabulary`"));
        };
        if vocabulary > self.vocabulary {
            return Err(ShapeError::new(expected(), *input).hint(format!(
                "make the vocabulary at least the input's, `Embedding({vocabulary}, {})`",
                self.width
            )));
        }
        if input.rank() != 1 {
            return Err(ShapeError::new(
                "a sequence of token ids, `tokens[time]`",
                *input,
            ));
        }
        Ok(Shape::new(&[input.size(), self.width]))
    }

    fn parameter_count(&self, _input: &Shape) -> Option<usize> {
        self.vocabulary.checked_mul(self.width)
    }

    fn traits(&self) -> Traits {
        // The backward pass adds each output gradient row to the row of its id.
        Traits {
            reads_input: true,
            takes_tokens: true,
            ..Traits::default()
        }
    }

    fn rust(&self) -> String {
        struct_literal(
            "::kiln::shape::EmbeddingSpec",
            &[("vocabulary", &self.vocabulary), ("width", &self.width)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: EmbeddingSpec = EmbeddingSpec {
        vocabulary: 65,
        width: 32,
    };

    #[test]
    fn token_ids_become_rows() {
        let out = SPEC.output_for(&Shape::tokens(&[64], 65)).unwrap();
        assert_eq!(out, Shape::new(&[64, 32]));
        assert_eq!(SPEC.parameter_count(&Shape::tokens(&[64], 65)), Some(2080));
        // A smaller input vocabulary fits.
        assert!(SPEC.output_for(&Shape::tokens(&[8], 10)).is_ok());
    }

    #[test]
    fn a_vocabulary_smaller_than_the_input_s_is_refused() {
        let err = SPEC.output_for(&Shape::tokens(&[64], 80)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expects token ids below 65 but gets tokens[64] of 80: make the vocabulary at least the input's, `Embedding(80, 32)`"
        );
    }

    #[test]
    fn real_values_are_refused() {
        let err = SPEC.output_for(&Shape::new(&[64])).unwrap_err();
        assert!(
            err.to_string()
                .contains("input: tokens[time] of vocabulary"),
            "{err}"
        );
    }
}
