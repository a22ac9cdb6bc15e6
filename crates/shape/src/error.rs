//! Why a layer cannot take a shape, or why its arguments are invalid.

use std::fmt;

use crate::Shape;

/// A layer cannot take the shape it is given.
///
/// It holds the numbers, not a sentence about a specific model: the `model!` macro
/// adds the layer names (`` `fc1: Dense(128)` expects a rank-1 input but `pool3`
/// produces [2, 2, 128]: insert `Flatten` ``), and so does a layer built at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    /// What the layer expects, as a phrase: "a rank-1 input", "an input of at least 3x3".
    pub expected: String,
    /// The shape it was given.
    pub got: Shape,
    /// What to do about it, when there is an obvious fix: "insert `Flatten`".
    pub hint: Option<String>,
}

impl ShapeError {
    pub(crate) fn new(expected: impl Into<String>, got: Shape) -> Self {
        Self {
            expected: expected.into(),
            got,
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expects {} but gets {}", self.expected, self.got)?;
        if let Some(hint) = &self.hint {
            write!(f, ": {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ShapeError {}

/// A layer argument is out of its valid range (zero filters, a dropout rate of 1.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// The argument's name, as written in `model!` (`filters`, `rate`).
    pub argument: &'static str,
    /// What is wrong: "must be at least 1, got 0".
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.argument, self.message)
    }
}

impl std::error::Error for SpecError {}
