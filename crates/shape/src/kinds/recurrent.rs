//! The recurrent layers: `Lstm(units)`, `Gru(units)` and `SimpleRnn(units)`, over a
//! `[time, features]` sequence.

use crate::kind::{
    ArgDef, ArgType, LayerKind, RustLiteral, Spec, Traits, at_least_one, struct_literal,
};
use crate::{Shape, ShapeError, SpecError};

/// The cell a recurrent layer runs at each time step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Long short-term memory: input, forget, cell and output gates (Keras's order).
    Lstm,
    /// Gated recurrent unit: update, reset and candidate gates (Keras's order).
    /// `reset_after` (Keras's default, PyTorch's form) applies the reset gate after
    /// the candidate's recurrent product, which then has a bias of its own.
    Gru {
        /// The reset gate multiplies `h[t-1] U + b'`, not `h[t-1]`.
        reset_after: bool,
    },
    /// `tanh(x W + b + h[t-1] U)`.
    SimpleRnn,
}

impl Cell {
    /// Gate blocks of `units` columns in the input and recurrent kernels.
    pub const fn gates(self) -> usize {
        match self {
            Self::Lstm => 4,
            Self::Gru { .. } => 3,
            Self::SimpleRnn => 1,
        }
    }

    /// The kind's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Lstm => "Lstm",
            Self::Gru { .. } => "Gru",
            Self::SimpleRnn => "SimpleRnn",
        }
    }
}

impl RustLiteral for Cell {
    fn rust(&self) -> String {
        match self {
            Self::Lstm => "::kiln::shape::Cell::Lstm".into(),
            Self::Gru { reset_after } => {
                format!("::kiln::shape::Cell::Gru {{ reset_after: {reset_after} }}")
            }
            Self::SimpleRnn => "::kiln::shape::Cell::SimpleRnn".into(),
        }
    }
}

/// A recurrent layer: its cell, its width, and whether it returns every time step's
/// output or only the last.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecurrentSpec {
    /// The cell.
    pub cell: Cell,
    /// Width of the hidden state and of the output.
    pub units: usize,
    /// `[time, units]` out when set, else the last step's `[units]` (Keras's default).
    pub return_sequences: bool,
    /// Each call starts from the states the previous call ended with (Keras's
    /// `stateful`): a long stream read window after window with the gradient cut at
    /// each window's start (truncated backpropagation through time), or generation
    /// one token at a time. The layer's `reset_states` starts again from zero.
    pub stateful: bool,
    /// A second layer of the same cell reads the sequence from its end (Keras's
    /// `Bidirectional` wrapper, PyTorch's `bidirectional=True`): the output is the
    /// two directions' outputs concatenated, `2 units` wide, the forward direction's
    /// first. With `return_sequences`, step `t` holds both directions' states at `t`;
    /// without, the forward direction's last state and the reverse one's (which has
    /// read the whole sequence back to its first step).
    pub bidirectional: bool,
    /// Keras's `dropout`: in training, each input value is zeroed with this
    /// probability and the rest scaled by `1 / (1 - dropout)` before the input
    /// product (both directions read the same dropped input). Each value of each step
    /// is drawn on its own, as a `Dropout` layer before this one would (Keras draws
    /// one mask a sequence and applies it at every step).
    pub dropout: f32,
}

/// The arguments every recurrent kind takes after its width.
macro_rules! recurrent_args {
    ($($extra:expr),*) => {
        &[
            ArgDef::required("units", ArgType::Count).aliases(&["hidden_size"]),
            ArgDef::optional("return_sequences", ArgType::Flag, "false").named_only(),
            ArgDef::optional("stateful", ArgType::Flag, "false").named_only(),
            ArgDef::optional("bidirectional", ArgType::Flag, "false").named_only(),
            ArgDef::optional("dropout", ArgType::Number, "0").named_only(),
            $($extra,)*
        ]
    };
}

fn recurrent_spec(cell: Cell, args: &crate::kind::Args) -> Box<dyn Spec> {
    Box::new(RecurrentSpec {
        cell,
        units: args.count("units").unwrap_or(0),
        return_sequences: args.flag("return_sequences").unwrap_or(false),
        stateful: args.flag("stateful").unwrap_or(false),
        bidirectional: args.flag("bidirectional").unwrap_or(false),
        dropout: args.number("dropout").unwrap_or(0.0),
    })
}

/// `Lstm`.
pub static LSTM: LayerKind = LayerKind {
    name: "Lstm",
    aliases: &["LSTM", "CuDNNLSTM"],
    about: "long short-term memory over `[time, features]`: `[time, units]` or the last `[units]`",
    args: recurrent_args!(),
    runtime: "::kiln::nn::layers::recurrent::Recurrent<B>",
    spec: |args| recurrent_spec(Cell::Lstm, args),
};

/// `Gru`.
pub static GRU: LayerKind = LayerKind {
    name: "Gru",
    aliases: &["GRU", "CuDNNGRU"],
    about: "gated recurrent unit over `[time, features]`: `[time, units]` or the last `[units]`",
    args: recurrent_args!(ArgDef::optional("reset_after", ArgType::Flag, "true").named_only()),
    runtime: "::kiln::nn::layers::recurrent::Recurrent<B>",
    spec: |args| {
        let reset_after = args.flag("reset_after").unwrap_or(true);
        recurrent_spec(Cell::Gru { reset_after }, args)
    },
};

/// `SimpleRnn`.
pub static SIMPLE_RNN: LayerKind = LayerKind {
    name: "SimpleRnn",
    aliases: &["SimpleRNN", "RNN"],
    about: "`tanh(x W + b + h U)` over `[time, features]`: `[time, units]` or the last `[units]`",
    args: recurrent_args!(),
    runtime: "::kiln::nn::layers::recurrent::Recurrent<B>",
    spec: |args| recurrent_spec(Cell::SimpleRnn, args),
};

impl RecurrentSpec {
    /// The number of gate columns of the kernels: gates times units.
    pub const fn gate_width(&self) -> usize {
        self.cell.gates() * self.units
    }

    /// The output's last axis: `units`, or `2 units` when bidirectional.
    pub const fn output_width(&self) -> usize {
        if self.bidirectional {
            2 * self.units
        } else {
            self.units
        }
    }
}

impl Spec for RecurrentSpec {
    fn kind_name(&self) -> &'static str {
        self.cell.name()
    }

    fn validate(&self) -> Vec<SpecError> {
        let mut errors = Vec::new();
        at_least_one(&mut errors, "units", self.units);
        if self.bidirectional && self.stateful {
            errors.push(SpecError {
                argument: "stateful",
                message: "cannot go with `bidirectional = true`: the reverse direction reads each window from its end, so no state carries from one window to the next".into(),
            });
        }
        if !(0.0..1.0).contains(&self.dropout) {
            errors.push(SpecError {
                argument: "dropout",
                message: format!("must be in [0, 1), got {:?}", self.dropout),
            });
        }
        errors
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let Some((time, _)) = input.as_sequence() else {
            let err = ShapeError::new("a `[time, features]` sequence", *input);
            return Err(match input.rank() {
                1 => err.hint(
                    "a vector has no time axis: give the layer before it `return_sequences = true`, or declare `input: [time, features]`",
                ),
                3 => err.hint("a recurrent layer reads sequences, not images: use `Conv2d` on images"),
                _ => err,
            });
        };
        Ok(if self.return_sequences {
            Shape::new(&[time, self.output_width()])
        } else {
            Shape::new(&[self.output_width()])
        })
    }

    fn parameter_count(&self, input: &Shape) -> Option<usize> {
        let features = input.dims().last().copied().unwrap_or(0);
        let per_gate = features
            .checked_add(self.units)?
            .checked_mul(self.units)?
            .checked_add(self.units)?;
        let recurrent_bias = match self.cell {
            Cell::Gru { reset_after: true } => self.gate_width(),
            _ => 0,
        };
        let directions = if self.bidirectional { 2 } else { 1 };
        per_gate
            .checked_mul(self.cell.gates())?
            .checked_add(recurrent_bias)?
            .checked_mul(directions)
    }

    fn traits(&self) -> Traits {
        // The weight gradient reads the input; the states the backward pass needs
        // live in the layer's own workspace.
        Traits {
            reads_input: true,
            ..Traits::default()
        }
    }

    fn rust(&self) -> String {
        struct_literal(
            "::kiln::shape::RecurrentSpec",
            &[
                ("cell", &self.cell),
                ("units", &self.units),
                ("return_sequences", &self.return_sequences),
                ("stateful", &self.stateful),
                ("bidirectional", &self.bidirectional),
                ("dropout", &self.dropout),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lstm(units: usize, return_sequences: bool) -> RecurrentSpec {
        RecurrentSpec {
            cell: Cell::Lstm,
            units,
            return_sequences,
            stateful: false,
            bidirectional: false,
            dropout: 0.0,
        }
    }

    #[test]
    fn sequences_or_the_last_step() {
        let input = Shape::new(&[64, 32]);
        assert_eq!(
            lstm(128, true).output_for(&input).unwrap(),
            Shape::new(&[64, 128])
        );
        assert_eq!(
            lstm(128, false).output_for(&input).unwrap(),
            Shape::new(&[128])
        );
        // Keras: 4 * ((32 + 128) * 128 + 128).
        assert_eq!(lstm(128, true).parameter_count(&input), Some(82_432));
        // Keras's GRU(128) over 32 features: 3 * ((32 + 128) * 128 + 128), plus the
        // recurrent bias (3 * 128) with reset_after; SimpleRNN: (32 + 128) * 128 + 128.
        let with = |cell| RecurrentSpec {
            cell,
            ..lstm(128, false)
        };
        let gru = |reset_after| with(Cell::Gru { reset_after }).parameter_count(&input);
        assert_eq!(gru(true), Some(62_208));
        assert_eq!(gru(false), Some(61_824));
        assert_eq!(with(Cell::SimpleRnn).parameter_count(&input), Some(20_608));
        // Bidirectional: twice the weights, twice the width.
        let both = RecurrentSpec {
            bidirectional: true,
            ..lstm(128, true)
        };
        assert_eq!(both.parameter_count(&input), Some(2 * 82_432));
        assert_eq!(both.output_for(&input).unwrap(), Shape::new(&[64, 256]));
        let stateful = RecurrentSpec {
            stateful: true,
            ..both
        };
        assert!(stateful.validate()[0].message.contains("bidirectional"));
        let dropped = |dropout| RecurrentSpec { dropout, ..both }.validate();
        assert!(dropped(0.5).is_empty());
        assert_eq!(
            dropped(1.0)[0].to_string(),
            "`dropout` must be in [0, 1), got 1.0"
        );
    }

    #[test]
    fn images_and_vectors_are_refused() {
        let err = lstm(8, true)
            .output_for(&Shape::new(&[32, 32, 3]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "expects a `[time, features]` sequence but gets [32, 32, 3]: a recurrent layer reads sequences, not images: use `Conv2d` on images"
        );
        let err = lstm(8, true).output_for(&Shape::new(&[16])).unwrap_err();
        assert!(err.to_string().contains("return_sequences = true"), "{err}");
        let err = lstm(8, true)
            .output_for(&Shape::tokens(&[16], 65))
            .unwrap_err();
        assert!(err.to_string().contains("Embedding(65, width)"), "{err}");
    }
}
