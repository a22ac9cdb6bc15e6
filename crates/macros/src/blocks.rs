//! The blocks of `model!`: layers grouped into a residual sum, a concatenation of
//! parallel branches, or a plain chain. Unlike layer kinds, which `kiln-shape`
//! describes, blocks are the macro's own syntax: they make the model a graph.

use kiln_shape::{Activation, ArgDef, ArgType};

/// A block kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// `Residual(activation) { branch.., shortcut: .. }`: `act(shortcut(x) + branch(x))`,
    /// the shortcut the identity unless given.
    Residual,
    /// `Concat { a: .., b: .. }`: every branch applied to the block's input, the
    /// results concatenated along the last axis (channels, or features).
    Concat,
    /// `Sequential { .. }`: its layers one after another (a `shortcut` or a branch of
    /// several layers).
    Sequential,
}

impl BlockKind {
    /// Every block kind.
    pub const ALL: [BlockKind; 3] = [Self::Residual, Self::Concat, Self::Sequential];

    /// The name written in `model!`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Residual => "Residual",
            Self::Concat => "Concat",
            Self::Sequential => "Sequential",
        }
    }

    /// The kind named `name`, exactly.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Other libraries' names, suggested when a user writes them.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Self::Residual => &["Add", "ResidualBlock", "BasicBlock"],
            Self::Concat => &["Concatenate", "Cat"],
            Self::Sequential => &["Sequence", "Chain"],
        }
    }

    /// The arguments between parentheses.
    pub fn args(self) -> &'static [ArgDef] {
        const RESIDUAL: &[ArgDef] = &[ArgDef::optional(
            "activation",
            ArgType::Activation,
            "linear",
        )];
        match self {
            Self::Residual => RESIDUAL,
            Self::Concat | Self::Sequential => &[],
        }
    }

    /// One line for the documentation table (which `build.rs` writes).
    #[allow(dead_code)]
    pub fn about(self) -> &'static str {
        match self {
            Self::Residual => {
                "`activation(shortcut(x) + branch(x))`: the block's layers are the branch; `shortcut:` (the identity unless given) maps the input to the branch's shape"
            }
            Self::Concat => {
                "each field a branch applied to the block's input, the outputs concatenated along the last axis"
            }
            Self::Sequential => {
                "its layers one after another: a shortcut or branch of several layers"
            }
        }
    }
}

/// The activations a residual sum can apply as it adds: those that differentiate
/// from their output, which the sum keeps.
pub fn residual_activation_fuses(activation: Activation) -> bool {
    matches!(
        activation,
        Activation::Linear
            | Activation::Relu
            | Activation::LeakyRelu { .. }
            | Activation::Sigmoid
            | Activation::Tanh
    )
}
