//! The layer kinds `model!` knows, their arguments, and how a call such as
//! `Conv2d(32, kernel = 3, padding = same)` becomes a [`LayerSpec`].
//!
//! This is argument binding only. Whether the values are in range is
//! [`LayerSpec::validate`]'s call and whether the shapes fit is
//! [`LayerSpec::output_shape`]'s, both in `kiln-shape`.

use std::collections::HashMap;

use kiln_shape::{Activation, Conv2dSpec, DenseSpec, DropoutSpec, LayerSpec, Padding, Pool2dSpec};
use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::parse::{Arg, LayerCall, Value};
use crate::suggest::{self, did_you_mean, list};

/// A layer kind, as written in `model!`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Dense(units, activation)`
    Dense,
    /// `Conv2d(filters, kernel, activation)`
    Conv2d,
    /// `MaxPool2d(size, stride)`
    MaxPool2d,
    /// `AvgPool2d(size, stride)`
    AvgPool2d,
    /// `GlobalAvgPool2d`
    GlobalAvgPool2d,
    /// `Flatten`
    Flatten,
    /// `Dropout(rate)`
    Dropout,
    /// `Relu`
    Relu,
    /// `LeakyRelu(negative_slope)`
    LeakyRelu,
    /// `Sigmoid`
    Sigmoid,
    /// `Tanh`
    Tanh,
    /// `Gelu`
    Gelu,
    /// `Softmax`
    Softmax,
}

/// What an argument's value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    /// A non-negative integer: units, filters.
    Count,
    /// An integer or an `(h, w)` pair: kernel, stride, size.
    Size,
    /// An activation identifier.
    Activation,
    /// `valid` or `same`.
    Padding,
    /// A float (or integer) literal, possibly negative.
    Number,
}

/// One argument a layer kind accepts.
struct Param {
    name: &'static str,
    ty: Ty,
    /// Whether it can be given by position (positional parameters come first).
    positional: bool,
    required: bool,
}

const fn param(name: &'static str, ty: Ty, positional: bool, required: bool) -> Param {
    Param {
        name,
        ty,
        positional,
        required,
    }
}

const DENSE: &[Param] = &[
    param("units", Ty::Count, true, true),
    param("activation", Ty::Activation, true, false),
];
const CONV2D: &[Param] = &[
    param("filters", Ty::Count, true, true),
    param("kernel", Ty::Size, true, true),
    param("activation", Ty::Activation, true, false),
    param("stride", Ty::Size, false, false),
    param("padding", Ty::Padding, false, false),
];
const POOL2D: &[Param] = &[
    param("size", Ty::Size, true, true),
    param("stride", Ty::Size, true, false),
    param("padding", Ty::Padding, false, false),
];
const DROPOUT: &[Param] = &[param("rate", Ty::Number, true, true)];
const LEAKY_RELU: &[Param] = &[param("negative_slope", Ty::Number, true, false)];

impl Kind {
    /// Every kind, in the order error messages list them.
    pub const ALL: &[Kind] = &[
        Kind::Dense,
        Kind::Conv2d,
        Kind::MaxPool2d,
        Kind::AvgPool2d,
        Kind::GlobalAvgPool2d,
        Kind::Flatten,
        Kind::Dropout,
        Kind::Relu,
        Kind::LeakyRelu,
        Kind::Sigmoid,
        Kind::Tanh,
        Kind::Gelu,
        Kind::Softmax,
    ];

    /// The kind's name, as written in `model!`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dense => "Dense",
            Kind::Conv2d => "Conv2d",
            Kind::MaxPool2d => "MaxPool2d",
            Kind::AvgPool2d => "AvgPool2d",
            Kind::GlobalAvgPool2d => "GlobalAvgPool2d",
            Kind::Flatten => "Flatten",
            Kind::Dropout => "Dropout",
            Kind::Relu => "Relu",
            Kind::LeakyRelu => "LeakyRelu",
            Kind::Sigmoid => "Sigmoid",
            Kind::Tanh => "Tanh",
            Kind::Gelu => "Gelu",
            Kind::Softmax => "Softmax",
        }
    }

    /// The kind named `name`, exactly.
    pub fn from_name(name: &str) -> Option<Kind> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Every kind's name.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.name()).collect()
    }

    fn params(self) -> &'static [Param] {
        match self {
            Kind::Dense => DENSE,
            Kind::Conv2d => CONV2D,
            Kind::MaxPool2d | Kind::AvgPool2d => POOL2D,
            Kind::Dropout => DROPOUT,
            Kind::LeakyRelu => LEAKY_RELU,
            Kind::GlobalAvgPool2d
            | Kind::Flatten
            | Kind::Relu
            | Kind::Sigmoid
            | Kind::Tanh
            | Kind::Gelu
            | Kind::Softmax => &[],
        }
    }

    /// `Conv2d(filters, kernel, activation)`: the positional form.
    fn signature(self) -> String {
        let positional: Vec<&str> = self
            .params()
            .iter()
            .filter(|p| p.positional)
            .map(|p| p.name)
            .collect();
        format!("`{}({})`", self.name(), positional.join(", "))
    }
}

/// A layer call bound to its kind's parameters.
pub struct Bound {
    /// The spec, or `None` when an argument error leaves its shape unknown.
    pub spec: Option<LayerSpec>,
    /// The tokens of each argument the user wrote, by parameter name, to span the
    /// errors of [`LayerSpec::validate`] on them.
    pub written: HashMap<&'static str, TokenStream>,
}

/// A value converted to its parameter's type.
#[derive(Clone, Copy)]
enum Typed {
    Count(usize),
    Size((usize, usize)),
    Activation(Activation),
    Padding(Padding),
    Number(f32),
}

/// Binds the arguments of `call` (already known to be of kind `kind`) and builds its
/// spec, pushing every argument error onto `errors`.
pub fn bind(kind: Kind, call: &LayerCall, errors: &mut Vec<syn::Error>) -> Bound {
    let params = kind.params();
    let positional: Vec<&Param> = params.iter().filter(|p| p.positional).collect();
    let mut values: HashMap<&'static str, Typed> = HashMap::new();
    let mut written: HashMap<&'static str, TokenStream> = HashMap::new();
    // An error that makes the output shape unknown (a wrong size, a missing filter
    // count). A wrong activation does not: activations never change a shape.
    let mut shape_unknown = false;
    // Unknown names and misplaced arguments make "missing argument" errors likely
    // consequences rather than mistakes of their own.
    let mut misplaced = false;
    let mut positional_late = false;

    let args = call.args.iter().flat_map(|(_, args)| args.iter());
    let mut first_named: Option<&Arg> = None;
    let mut next_positional = 0;
    for arg in args {
        let (param, value) = match arg {
            Arg::Positional(value) => {
                if let Some(named) = first_named {
                    // Report the first one only: the rest are the same mistake.
                    if !positional_late {
                        errors.push(syn::Error::new_spanned(
                            arg,
                            format!(
                                "positional argument after the named argument `{named}`: name it, or move it before the named ones"
                            ),
                        ));
                    }
                    shape_unknown = true;
                    misplaced = true;
                    positional_late = true;
                    continue;
                }
                let Some(param) = positional.get(next_positional) else {
                    errors.push(too_many(kind, arg, positional.len()));
                    shape_unknown = true;
                    continue;
                };
                next_positional += 1;
                (*param, value)
            }
            Arg::Named { key, value, .. } => {
                first_named.get_or_insert(arg);
                let key_name = key.to_string();
                let Some(param) = params.iter().find(|p| p.name == key_name) else {
                    errors.push(unknown_argument(kind, key));
                    shape_unknown = true;
                    misplaced = true;
                    continue;
                };
                if written.contains_key(param.name) {
                    errors.push(syn::Error::new_spanned(
                        arg,
                        format!("`{}` is given twice", param.name),
                    ));
                    shape_unknown = true;
                    continue;
                }
                (param, value)
            }
        };
        written.insert(param.name, arg.to_token_stream());
        match convert(param, value) {
            Ok(typed) => {
                values.insert(param.name, typed);
            }
            Err(err) => {
                errors.push(err);
                if param.ty == Ty::Activation {
                    values.insert(param.name, Typed::Activation(Activation::Linear));
                } else {
                    shape_unknown = true;
                }
            }
        }
    }

    for param in params.iter().filter(|p| p.required) {
        if !written.contains_key(param.name) {
            shape_unknown = true;
            if !misplaced {
                errors.push(syn::Error::new_spanned(
                    call,
                    format!(
                        "`{}` needs `{}`: {}",
                        kind.name(),
                        param.name,
                        kind.signature()
                    ),
                ));
            }
        }
    }
    let spec = if shape_unknown {
        None
    } else {
        Some(spec(kind, &values))
    };
    Bound { spec, written }
}

/// The spec from converted values, with kiln's (Keras's) defaults for the rest.
/// Every required parameter is present.
fn spec(kind: Kind, values: &HashMap<&'static str, Typed>) -> LayerSpec {
    let count = |name| match values.get(name) {
        Some(Typed::Count(v)) => *v,
        _ => 0,
    };
    let size = |name| match values.get(name) {
        Some(Typed::Size(v)) => Some(*v),
        _ => None,
    };
    let number = |name| match values.get(name) {
        Some(Typed::Number(v)) => Some(*v),
        _ => None,
    };
    let activation = match values.get("activation") {
        Some(Typed::Activation(a)) => *a,
        _ => Activation::Linear,
    };
    let padding = match values.get("padding") {
        Some(Typed::Padding(p)) => *p,
        _ => Padding::Valid,
    };
    match kind {
        Kind::Dense => LayerSpec::Dense(DenseSpec {
            units: count("units"),
            activation,
        }),
        Kind::Conv2d => LayerSpec::Conv2d(Conv2dSpec {
            filters: count("filters"),
            kernel: size("kernel").unwrap_or((0, 0)),
            stride: size("stride").unwrap_or((1, 1)),
            padding,
            activation,
        }),
        Kind::MaxPool2d | Kind::AvgPool2d => {
            let window = size("size").unwrap_or((0, 0));
            let pool = Pool2dSpec {
                size: window,
                stride: size("stride").unwrap_or(window),
                padding,
            };
            if kind == Kind::MaxPool2d {
                LayerSpec::MaxPool2d(pool)
            } else {
                LayerSpec::AvgPool2d(pool)
            }
        }
        Kind::GlobalAvgPool2d => LayerSpec::GlobalAvgPool2d,
        Kind::Flatten => LayerSpec::Flatten,
        Kind::Dropout => LayerSpec::Dropout(DropoutSpec {
            rate: number("rate").unwrap_or(0.0),
        }),
        Kind::Relu => LayerSpec::Activation(Activation::Relu),
        Kind::LeakyRelu => LayerSpec::Activation(Activation::LeakyRelu {
            negative_slope: number("negative_slope").unwrap_or(Activation::LEAKY_RELU_LAYER_SLOPE),
        }),
        Kind::Sigmoid => LayerSpec::Activation(Activation::Sigmoid),
        Kind::Tanh => LayerSpec::Activation(Activation::Tanh),
        Kind::Gelu => LayerSpec::Activation(Activation::Gelu),
        Kind::Softmax => LayerSpec::Activation(Activation::Softmax),
    }
}

fn too_many(kind: Kind, arg: &Arg, max: usize) -> syn::Error {
    let message = match max {
        0 => format!("`{}` takes no arguments", kind.name()),
        1 => format!(
            "`{}` takes one positional argument: {}",
            kind.name(),
            kind.signature()
        ),
        n => format!(
            "`{}` takes at most {n} positional arguments: {}",
            kind.name(),
            kind.signature()
        ),
    };
    syn::Error::new_spanned(arg, message)
}

fn unknown_argument(kind: Kind, key: &syn::Ident) -> syn::Error {
    let names: Vec<&str> = kind.params().iter().map(|p| p.name).collect();
    let key_name = key.to_string();
    let tail = if names.is_empty() {
        String::from("; it takes no arguments")
    } else {
        did_you_mean(&key_name, &names, suggest::ARGUMENT_ALIASES, || {
            format!("its arguments are {}", list(&names))
        })
    };
    syn::Error::new_spanned(
        key,
        format!("`{}` has no argument `{key_name}`{tail}", kind.name()),
    )
}

fn convert(param: &Param, value: &Value) -> syn::Result<Typed> {
    let name = param.name;
    match param.ty {
        Ty::Count => match value.as_usize() {
            Some(v) => Ok(Typed::Count(v?)),
            None => Err(syn::Error::new_spanned(
                value,
                format!("`{name}` takes a count (a non-negative integer), got `{value}`"),
            )),
        },
        Ty::Size => {
            let pair = match value {
                Value::Tuple { items, .. } if items.len() == 2 => {
                    match (items[0].as_usize(), items[1].as_usize()) {
                        (Some(h), Some(w)) => Some((h?, w?)),
                        _ => None,
                    }
                }
                _ => value.as_usize().transpose()?.map(|v| (v, v)),
            };
            pair.map(Typed::Size).ok_or_else(|| {
                syn::Error::new_spanned(
                    value,
                    format!(
                        "`{name}` takes a size like `3` or a (height, width) pair like `(3, 3)`, got `{value}`"
                    ),
                )
            })
        }
        Ty::Number => match value.as_f32() {
            Some(v) => Ok(Typed::Number(v?)),
            None => Err(syn::Error::new_spanned(
                value,
                format!("`{name}` takes a number like `0.5`, got `{value}`"),
            )),
        },
        Ty::Activation => identifier(
            value,
            "activation",
            Activation::IDENTS,
            suggest::ACTIVATION_ALIASES,
            Activation::from_ident,
        )
        .map(Typed::Activation),
        Ty::Padding => identifier(value, "padding", &["valid", "same"], &[], |p| match p {
            "valid" => Some(Padding::Valid),
            "same" => Some(Padding::Same),
            _ => None,
        })
        .map(Typed::Padding),
    }
}

/// An identifier argument (`relu`, `same`), with a suggestion when it is unknown and
/// a hint when it is quoted (`"same"`, as Keras writes it).
fn identifier<T>(
    value: &Value,
    what: &str,
    idents: &[&str],
    aliases: &[(&str, &str)],
    lookup: impl Fn(&str) -> Option<T>,
) -> syn::Result<T> {
    let accepted = || format!("the {what} names are {}", list(idents));
    match value {
        Value::Ident(ident) => {
            let word = ident.to_string();
            lookup(&word).ok_or_else(|| {
                let tail = did_you_mean(&word, idents, aliases, accepted);
                syn::Error::new_spanned(ident, format!("unknown {what} `{word}`{tail}"))
            })
        }
        Value::Str(lit) => {
            let word = lit.value();
            let message = match lookup(&word) {
                Some(_) => format!("write the {what} without quotes: `{word}`"),
                None => {
                    let tail = did_you_mean(&word, idents, aliases, accepted);
                    format!("the {what} is a name, not a string{tail}")
                }
            };
            Err(syn::Error::new_spanned(lit, message))
        }
        _ => Err(syn::Error::new_spanned(
            value,
            format!("expected an {what} name, got `{value}`; {}", accepted()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Field, parse};
    use quote::quote;

    /// Binds the one layer of `tokens`, a call like `Conv2d(32, 3)`.
    fn bind_call(tokens: TokenStream) -> (Option<LayerSpec>, Vec<String>) {
        let model = parse(quote! { struct M { input: [4], l: #tokens } }).unwrap();
        assert!(model.errors.is_empty(), "syntax error");
        let Field::Layer(layer) = &model.fields[1] else {
            panic!("not a layer")
        };
        let kind = Kind::from_name(&layer.call.kind.to_string()).unwrap();
        let mut errors = Vec::new();
        let bound = bind(kind, &layer.call, &mut errors);
        (bound.spec, errors.iter().map(ToString::to_string).collect())
    }

    fn ok(tokens: TokenStream) -> LayerSpec {
        let (spec, errors) = bind_call(tokens);
        assert_eq!(errors, Vec::<String>::new());
        spec.unwrap()
    }

    fn err(tokens: TokenStream) -> Vec<String> {
        bind_call(tokens).1
    }

    #[test]
    fn positional_and_named_forms_agree() {
        let positional = ok(quote!(Conv2d(32, 3, relu)));
        let named = ok(quote!(Conv2d(
            filters = 32,
            kernel = (3, 3),
            stride = 1,
            padding = valid,
            activation = relu
        )));
        assert_eq!(positional, named);
        assert_eq!(
            ok(quote!(Dense(10, softmax))),
            ok(quote!(Dense(units = 10, activation = softmax)))
        );
    }

    #[test]
    fn defaults_are_keras_defaults() {
        let LayerSpec::MaxPool2d(pool) = ok(quote!(MaxPool2d(3))) else {
            panic!()
        };
        assert_eq!(pool.stride, (3, 3));
        assert_eq!(pool.padding, Padding::Valid);
        let LayerSpec::Conv2d(conv) = ok(quote!(Conv2d(8, (3, 5), padding = same))) else {
            panic!()
        };
        assert_eq!(conv.kernel, (3, 5));
        assert_eq!(conv.stride, (1, 1));
        assert_eq!(conv.activation, Activation::Linear);
        assert_eq!(
            ok(quote!(LeakyRelu)),
            LayerSpec::Activation(Activation::LeakyRelu {
                negative_slope: Activation::LEAKY_RELU_LAYER_SLOPE
            })
        );
        assert_eq!(
            ok(quote!(Dropout(0))),
            LayerSpec::Dropout(DropoutSpec { rate: 0.0 })
        );
        assert_eq!(
            ok(quote!(Dropout(-0.5))),
            LayerSpec::Dropout(DropoutSpec { rate: -0.5 })
        );
    }

    #[test]
    fn argument_errors() {
        assert_eq!(
            err(quote!(Conv2d(32, 3, strides = 2))),
            ["`Conv2d` has no argument `strides`: did you mean `stride`?"]
        );
        assert_eq!(
            err(quote!(Conv2d(filters = 32, 3, relu))),
            [
                "positional argument after the named argument `filters = 32`: name it, or move it before the named ones"
            ]
        );
        assert_eq!(
            err(quote!(Dense(units = 3, units = 4))),
            ["`units` is given twice"]
        );
        assert_eq!(
            err(quote!(Conv2d(32))),
            ["`Conv2d` needs `kernel`: `Conv2d(filters, kernel, activation)`"]
        );
        assert_eq!(
            err(quote!(Dense(3, relu, 4))),
            ["`Dense` takes at most 2 positional arguments: `Dense(units, activation)`"]
        );
        assert_eq!(err(quote!(Flatten(1))), ["`Flatten` takes no arguments"]);
        assert_eq!(
            err(quote!(Dense(-3))),
            ["`units` takes a count (a non-negative integer), got `-3`"]
        );
        assert_eq!(
            err(quote!(Conv2d(8, (3, 3, 3)))),
            [
                "`kernel` takes a size like `3` or a (height, width) pair like `(3, 3)`, got `(3, 3, 3)`"
            ]
        );
    }

    #[test]
    fn identifier_errors_suggest() {
        assert_eq!(
            err(quote!(Dense(3, Relu))),
            ["unknown activation `Relu`: did you mean `relu`?"]
        );
        assert_eq!(
            err(quote!(Dense(3, swish))),
            [
                "unknown activation `swish`; the activation names are `linear`, `relu`, `leaky_relu`, `sigmoid`, `tanh`, `gelu` and `softmax`"
            ]
        );
        assert_eq!(
            err(quote!(Conv2d(3, 3, padding = "same"))),
            ["write the padding without quotes: `same`"]
        );
        assert_eq!(
            err(quote!(MaxPool2d(2, padding = vaild))),
            ["unknown padding `vaild`: did you mean `valid`?"]
        );
    }

    #[test]
    fn a_wrong_activation_keeps_the_shape_known() {
        let (spec, errors) = bind_call(quote!(Dense(3, rleu)));
        assert_eq!(errors.len(), 1);
        assert!(spec.is_some());
        let (spec, errors) = bind_call(quote!(Conv2d(3, 3, stride = x)));
        assert_eq!(errors.len(), 1);
        assert!(spec.is_none());
    }

    #[test]
    fn an_unknown_argument_hides_the_missing_one() {
        // `kernal` is the mistake; "missing `kernel`" would be its echo.
        assert_eq!(
            err(quote!(Conv2d(32, kernal = 3))),
            ["`Conv2d` has no argument `kernal`: did you mean `kernel`?"]
        );
    }
}
