//! Binding a call such as `Conv2d(32, kernel = 3, padding = same)` to the arguments
//! its kind declares (`kiln_shape::LayerKind::args`, or a block's own table), with
//! every error reported and spanned on the user's token.
//!
//! This is argument binding only. Whether the values are in range is the spec's
//! `validate` and whether the shapes fit is its `output_shape`, both in `kiln-shape`.

use std::collections::HashMap;

use kiln_shape::{Activation, ArgDef, ArgType, ArgValue, Args, Padding};
use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::parse::{Arg, LayerCall, Value};
use crate::suggest::{did_you_mean, list};

/// What a call's arguments bound to.
pub struct Bound {
    /// The arguments, or `None` when an error leaves the output shape unknown (a
    /// wrong size, a missing filter count). A wrong activation does not: activations
    /// never change a shape, so it counts as `linear` for the shape checks.
    pub args: Option<Args>,
    /// The tokens of each argument the user wrote, by name, to span the errors of
    /// the spec's `validate` on them.
    pub written: HashMap<&'static str, TokenStream>,
}

/// Binds the arguments of `call` to `params` (the kind called `kind`), pushing every
/// argument error onto `errors`.
pub fn bind(
    kind: &str,
    params: &'static [ArgDef],
    call: &LayerCall,
    errors: &mut Vec<syn::Error>,
) -> Bound {
    let positional: Vec<&ArgDef> = params.iter().filter(|p| p.positional).collect();
    let mut args = Args::new();
    let mut written: HashMap<&'static str, TokenStream> = HashMap::new();
    let mut shape_unknown = false;
    // Unknown names and misplaced arguments make "missing argument" errors likely
    // consequences rather than mistakes of their own.
    let mut misplaced = false;
    let mut positional_late = false;

    let given = call.args.iter().flat_map(|(_, args)| args.iter());
    let mut first_named: Option<&Arg> = None;
    let mut next_positional = 0;
    for arg in given {
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
                    errors.push(too_many(kind, params, arg, positional.len()));
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
                    errors.push(unknown_argument(kind, params, key));
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
            Ok(typed) => args.set(param.name, typed),
            Err(err) => {
                errors.push(err);
                if param.ty == ArgType::Activation {
                    args.set(param.name, ArgValue::Activation(Activation::Linear));
                } else {
                    shape_unknown = true;
                }
            }
        }
    }

    for param in params.iter().filter(|p| p.is_required()) {
        if !written.contains_key(param.name) {
            shape_unknown = true;
            if !misplaced {
                errors.push(syn::Error::new_spanned(
                    call,
                    format!(
                        "`{kind}` needs `{}`: `{}`",
                        param.name,
                        signature(kind, params)
                    ),
                ));
            }
        }
    }
    Bound {
        args: (!shape_unknown).then_some(args),
        written,
    }
}

/// The positional form, `Conv2d(filters, kernel, activation)`.
fn signature(kind: &str, params: &[ArgDef]) -> String {
    let positional: Vec<&str> = params
        .iter()
        .filter(|p| p.positional)
        .map(|p| p.name)
        .collect();
    format!("{kind}({})", positional.join(", "))
}

fn too_many(kind: &str, params: &[ArgDef], arg: &Arg, max: usize) -> syn::Error {
    let message = match max {
        0 => format!("`{kind}` takes no arguments"),
        1 => format!(
            "`{kind}` takes one positional argument: `{}`",
            signature(kind, params)
        ),
        n => format!(
            "`{kind}` takes at most {n} positional arguments: `{}`",
            signature(kind, params)
        ),
    };
    syn::Error::new_spanned(arg, message)
}

fn unknown_argument(kind: &str, params: &[ArgDef], key: &syn::Ident) -> syn::Error {
    let names: Vec<&str> = params.iter().map(|p| p.name).collect();
    let aliases: Vec<(&str, &str)> = params
        .iter()
        .flat_map(|p| p.aliases.iter().map(move |a| (*a, p.name)))
        .collect();
    let key_name = key.to_string();
    let tail = if names.is_empty() {
        String::from("; it takes no arguments")
    } else {
        did_you_mean(&key_name, &names, &aliases, || {
            format!("its arguments are {}", list(&names))
        })
    };
    syn::Error::new_spanned(key, format!("`{kind}` has no argument `{key_name}`{tail}"))
}

fn convert(param: &ArgDef, value: &Value) -> syn::Result<ArgValue> {
    let name = param.name;
    let wrong = || {
        syn::Error::new_spanned(
            value,
            format!("`{name}` takes {}, got `{value}`", param.ty.describe()),
        )
    };
    match param.ty {
        ArgType::Count => match value.as_usize() {
            Some(v) => Ok(ArgValue::Count(v?)),
            None => Err(wrong()),
        },
        ArgType::Size => {
            let pair = match value {
                Value::Tuple { items, .. } if items.len() == 2 => {
                    match (items[0].as_usize(), items[1].as_usize()) {
                        (Some(h), Some(w)) => Some((h?, w?)),
                        _ => None,
                    }
                }
                _ => value.as_usize().transpose()?.map(|v| (v, v)),
            };
            pair.map(ArgValue::Size).ok_or_else(wrong)
        }
        ArgType::Number => match value.as_f32() {
            Some(v) => Ok(ArgValue::Number(v?)),
            None => Err(wrong()),
        },
        ArgType::Activation => identifier(
            value,
            "activation",
            Activation::IDENTS,
            Activation::ALIASES,
            Activation::from_ident,
        )
        .map(ArgValue::Activation),
        ArgType::Padding => identifier(value, "padding", Padding::IDENTS, &[], Padding::from_ident)
            .map(ArgValue::Padding),
        ArgType::Flag => match value {
            Value::Bool(lit) => Ok(ArgValue::Flag(lit.value)),
            _ => Err(wrong()),
        },
        ArgType::Choice(names) => identifier(value, name, names, &[], |word| {
            names.iter().copied().find(|n| *n == word)
        })
        .map(ArgValue::Choice),
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
    use kiln_shape::{DenseSpec, DropoutSpec, Pool2dSpec, PoolMode, Spec, kind};
    use quote::quote;

    /// Binds the one layer of `tokens`, a call like `Conv2d(32, 3)`, and builds its
    /// spec, shown as the Rust it generates.
    fn bind_call(tokens: TokenStream) -> (Option<String>, Vec<String>) {
        let model = parse(quote! { struct M { input: [4], l: #tokens } }).unwrap();
        assert!(model.errors.is_empty(), "syntax error");
        let Field::Layer(layer) = &model.fields[1] else {
            panic!("not a layer")
        };
        let name = layer.call.kind.to_string();
        let kind = kind(&name).unwrap();
        let mut errors = Vec::new();
        let bound = bind(kind.name, kind.args, &layer.call, &mut errors);
        let spec = bound.args.map(|args| (kind.spec)(&args).rust());
        (spec, errors.iter().map(ToString::to_string).collect())
    }

    fn ok(tokens: TokenStream) -> String {
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
        let pool = Pool2dSpec {
            mode: PoolMode::Max,
            size: (3, 3),
            stride: (3, 3),
            padding: Padding::Valid,
        };
        assert_eq!(ok(quote!(MaxPool2d(3))), pool.rust());
        assert!(ok(quote!(Conv2d(8, (3, 5), padding = same))).contains(
            "kernel: (3usize, 5usize), stride: (1usize, 1usize), padding: ::kiln::shape::Padding::Same, activation: ::kiln::shape::Activation::Linear"
        ));
        let leaky = Activation::LeakyRelu {
            negative_slope: Activation::LEAKY_RELU_LAYER_SLOPE,
        };
        assert_eq!(ok(quote!(LeakyRelu)), Spec::rust(&leaky));
        assert_eq!(ok(quote!(Dropout(0))), DropoutSpec { rate: 0.0 }.rust());
        assert_eq!(ok(quote!(Dropout(-0.5))), DropoutSpec { rate: -0.5 }.rust());
        let dense = DenseSpec {
            units: 3,
            activation: Activation::Linear,
        };
        assert_eq!(ok(quote!(Dense(3))), dense.rust());
    }

    #[test]
    fn argument_errors() {
        assert_eq!(
            err(quote!(Conv2d(32, 3, strides = 2))),
            ["`Conv2d` has no argument `strides`: did you mean `stride`?"]
        );
        assert_eq!(
            err(quote!(MaxPool2d(pool_size = 2))),
            ["`MaxPool2d` has no argument `pool_size`: did you mean `size`?"]
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
