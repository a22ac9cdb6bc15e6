//! How a layer kind describes itself, once, for everything that needs to know it.
//!
//! A [`LayerKind`] is a layer as written in `model!`: its name, the names other
//! libraries give it, its arguments (types, defaults, other libraries' argument
//! names), the type that runs it, and how its arguments become a [`Spec`]. A `Spec`
//! is one configured layer: its checks, its shape rule, its parameter count, its
//! output activation, and [`Traits`], what the dataflow plan of a model may do around
//! it (the fusions it offers, what its backward pass reads).
//!
//! The `model!` macro derives its parsing, checks, suggestions, documentation and
//! generated code from these descriptions, and the layers of `kiln-nn` run the same
//! rules when they are built, so a kind is written once (one file under `kinds/`,
//! registered in [`KINDS`](crate::KINDS)).

use std::any::Any;
use std::fmt;

use crate::{Activation, Padding, Shape, ShapeError, SpecError};

/// A layer kind as `model!` knows it.
pub struct LayerKind {
    /// The name written in `model!`: `Conv2d`.
    pub name: &'static str,
    /// Other libraries' names for it, suggested when a user writes them: `Conv2D`,
    /// `Convolution2D`.
    pub aliases: &'static [&'static str],
    /// One line for the documentation table.
    pub about: &'static str,
    /// The arguments, positional ones first.
    pub args: &'static [ArgDef],
    /// The `kiln-nn` type that runs it, as a path from the facade with the backend
    /// parameter `B`: `::kiln::nn::layers::Conv2d<B>`.
    pub runtime: &'static str,
    /// The spec from arguments that have the declared types, every required one
    /// present; defaults are this function's to fill in.
    pub spec: fn(&Args) -> Box<dyn Spec>,
}

impl fmt::Debug for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerKind")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl LayerKind {
    /// The argument named `name`.
    pub fn arg(&self, name: &str) -> Option<&'static ArgDef> {
        self.args.iter().find(|a| a.name == name)
    }

    /// The positional form, `Conv2d(filters, kernel, activation)`.
    pub fn signature(&self) -> String {
        let positional: Vec<&str> = self
            .args
            .iter()
            .filter(|a| a.positional)
            .map(|a| a.name)
            .collect();
        if positional.is_empty() {
            self.name.to_string()
        } else {
            format!("{}({})", self.name, positional.join(", "))
        }
    }
}

/// One argument a layer kind takes.
#[derive(Clone, Copy, Debug)]
pub struct ArgDef {
    /// Its name in `model!`.
    pub name: &'static str,
    /// What its value must be.
    pub ty: ArgType,
    /// Whether it can be given by position (positional arguments come first).
    pub positional: bool,
    /// The value it takes when not given, as the documentation writes it; `None`
    /// when it must be given.
    pub default: Option<&'static str>,
    /// Other libraries' names for it (`kernel_size`, `strides`), suggested when a
    /// user writes them.
    pub aliases: &'static [&'static str],
}

impl ArgDef {
    /// A required argument.
    pub const fn required(name: &'static str, ty: ArgType) -> Self {
        Self {
            name,
            ty,
            positional: true,
            default: None,
            aliases: &[],
        }
    }

    /// An argument with a default, as its documentation writes it.
    pub const fn optional(name: &'static str, ty: ArgType, default: &'static str) -> Self {
        Self {
            name,
            ty,
            positional: true,
            default: Some(default),
            aliases: &[],
        }
    }

    /// The same argument, given by name only.
    pub const fn named_only(mut self) -> Self {
        self.positional = false;
        self
    }

    /// The same argument, with other libraries' names for it.
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }

    /// Whether it must be given.
    pub const fn is_required(&self) -> bool {
        self.default.is_none()
    }
}

/// What an argument's value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    /// A non-negative integer: units, filters.
    Count,
    /// An integer or a `(height, width)` pair: kernel, stride, size.
    Size,
    /// An activation identifier: `relu`.
    Activation,
    /// `valid`, `same` or (sequences) `causal`.
    Padding,
    /// A number, possibly negative: a rate, a slope.
    Number,
    /// `true` or `false`.
    Flag,
    /// One of the names listed.
    Choice(&'static [&'static str]),
}

impl ArgType {
    /// What the type accepts, for messages: "a count (a non-negative integer)".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Count => "a count (a non-negative integer)",
            Self::Size => "a size like `3` or a (height, width) pair like `(3, 3)`",
            Self::Activation => "an activation name like `relu`",
            Self::Padding => "`valid`, `same` or `causal`",
            Self::Number => "a number like `0.5`",
            Self::Flag => "`true` or `false`",
            Self::Choice(_) => "one of its names",
        }
    }
}

/// An argument's value, of its declared type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ArgValue {
    /// See [`ArgType::Count`].
    Count(usize),
    /// See [`ArgType::Size`].
    Size((usize, usize)),
    /// See [`ArgType::Activation`].
    Activation(Activation),
    /// See [`ArgType::Padding`].
    Padding(Padding),
    /// See [`ArgType::Number`].
    Number(f32),
    /// See [`ArgType::Flag`].
    Flag(bool),
    /// See [`ArgType::Choice`]: the name chosen.
    Choice(&'static str),
}

/// The arguments of one layer, by name, each of its declared type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Args {
    values: Vec<(&'static str, ArgValue)>,
}

impl Args {
    /// No arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// The arguments with `name` set to `value` (replacing an earlier value).
    pub fn with(mut self, name: &'static str, value: ArgValue) -> Self {
        self.set(name, value);
        self
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: &'static str, value: ArgValue) {
        match self.values.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name, value)),
        }
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<ArgValue> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// The count `name`, if given as one.
    pub fn count(&self, name: &str) -> Option<usize> {
        match self.get(name) {
            Some(ArgValue::Count(v)) => Some(v),
            _ => None,
        }
    }

    /// The size `name`, if given as one.
    pub fn size(&self, name: &str) -> Option<(usize, usize)> {
        match self.get(name) {
            Some(ArgValue::Size(v)) => Some(v),
            _ => None,
        }
    }

    /// The number `name`, if given as one.
    pub fn number(&self, name: &str) -> Option<f32> {
        match self.get(name) {
            Some(ArgValue::Number(v)) => Some(v),
            _ => None,
        }
    }

    /// The flag `name`, if given.
    pub fn flag(&self, name: &str) -> Option<bool> {
        match self.get(name) {
            Some(ArgValue::Flag(v)) => Some(v),
            _ => None,
        }
    }

    /// The name chosen for `name`, if given.
    pub fn choice(&self, name: &str) -> Option<&'static str> {
        match self.get(name) {
            Some(ArgValue::Choice(v)) => Some(v),
            _ => None,
        }
    }

    /// The activation `name`, or the identity when not given.
    pub fn activation(&self, name: &str) -> Activation {
        match self.get(name) {
            Some(ArgValue::Activation(a)) => a,
            _ => Activation::Linear,
        }
    }

    /// The padding `name`, or `valid` when not given.
    pub fn padding(&self, name: &str) -> Padding {
        match self.get(name) {
            Some(ArgValue::Padding(p)) => p,
            _ => Padding::Valid,
        }
    }
}

/// What the dataflow plan of a model may do around a layer: the fusions it offers,
/// and what its backward pass reads and writes, so that buffers can be shared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traits {
    /// The output is the input's memory under another shape (`Flatten`): the layer
    /// gets no buffer and never runs, and its gradient passes through.
    pub alias: bool,
    /// The backward pass reads the forward's input.
    pub reads_input: bool,
    /// The backward pass reads the forward's output.
    pub reads_output: bool,
    /// The backward pass overwrites the output gradient it is given (an activation's
    /// backward, done in place).
    pub overwrites_output_grad: bool,
    /// The backward pass can add its input gradient to what a buffer holds, so a value
    /// that feeds several consumers needs no scratch pass to sum their gradients.
    pub accumulates_input_grad: bool,
    /// The backward pass can take over the backward of a ReLU that produced its
    /// input (max pooling routes each window's gradient only where the maximum is
    /// positive): the layer before then skips its own ReLU backward.
    pub absorbs_relu_below: bool,
    /// The layer takes token ids (an `Embedding`); every other kind refuses them.
    pub takes_tokens: bool,
}

/// One configured layer: what `model!` checks and the layer is built from.
///
/// A spec is plain data (`Any`), so a tool that reads a model's graph, such as the
/// ONNX exporter, can look at the concrete spec behind `&dyn Spec`.
pub trait Spec: fmt::Debug + Any {
    /// The kind's name, as written in `model!`: `Conv2d`, `Relu`.
    fn kind_name(&self) -> &'static str;

    /// Checks the arguments alone (no shapes): counts at least 1, rates in range.
    /// Returns every problem, not only the first.
    fn validate(&self) -> Vec<SpecError> {
        Vec::new()
    }

    /// The output shape for one sample of shape `input`.
    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError>;

    /// [`Spec::output_shape`] after the check every kind shares: token ids go only
    /// into a kind whose [`Traits::takes_tokens`] says so. What `model!` and the
    /// layers call.
    fn output_for(&self, input: &Shape) -> Result<Shape, ShapeError> {
        if let Some(vocabulary) = input.vocabulary()
            && !self.traits().takes_tokens
        {
            return Err(ShapeError::new("real values", *input).hint(format!(
                "token ids go into an `Embedding` first: insert `Embedding({vocabulary}, width)` before it"
            )));
        }
        self.output_shape(input)
    }

    /// The number of trainable parameters for an input of shape `input`, or `None`
    /// when it overflows `usize`. Meaningful only when [`Spec::output_shape`]
    /// accepts `input`.
    fn parameter_count(&self, input: &Shape) -> Option<usize> {
        let _ = input;
        Some(0)
    }

    /// The number of values the layer saves but does not train (running statistics)
    /// for an input of shape `input`: Keras's non-trainable parameters.
    fn state_count(&self, input: &Shape) -> usize {
        let _ = input;
        0
    }

    /// The activation applied at the layer's output ([`Activation::Linear`] for
    /// none): what a fused loss or a pooling layer that absorbs a ReLU looks at.
    fn activation(&self) -> Activation {
        Activation::Linear
    }

    /// What the plan may do around the layer.
    fn traits(&self) -> Traits;

    /// The spec as a Rust expression, with absolute paths through the facade
    /// (`::kiln::shape::Conv2dSpec { .. }`): what the generated code builds the layer
    /// from.
    fn rust(&self) -> String;
}

/// Writes kiln values as Rust source, for [`Spec::rust`].
pub trait RustLiteral {
    /// The value as a Rust expression.
    fn rust(&self) -> String;
}

impl RustLiteral for usize {
    fn rust(&self) -> String {
        format!("{self}usize")
    }
}

impl RustLiteral for f32 {
    /// Exact: `{:?}` writes the shortest decimal that reads back as the same `f32`.
    fn rust(&self) -> String {
        format!("{self:?}f32")
    }
}

impl RustLiteral for bool {
    fn rust(&self) -> String {
        self.to_string()
    }
}

impl<A: RustLiteral, B: RustLiteral> RustLiteral for (A, B) {
    fn rust(&self) -> String {
        format!("({}, {})", self.0.rust(), self.1.rust())
    }
}

/// `path { a: .., b: .. }` from the fields' names and values.
pub fn struct_literal(path: &str, fields: &[(&str, &dyn RustLiteral)]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("{name}: {}", value.rust()))
        .collect();
    format!("{path} {{ {} }}", fields.join(", "))
}

/// The problem when `value` is zero: counts and sizes are at least 1.
pub(crate) fn at_least_one(errors: &mut Vec<SpecError>, argument: &'static str, value: usize) {
    if value == 0 {
        errors.push(SpecError {
            argument,
            message: "must be at least 1, got 0".to_string(),
        });
    }
}
