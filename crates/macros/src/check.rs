//! Stage 2: the AST to a checked model, or every error of the model at once.
//!
//! Each layer's spec is built (`layers.rs`), validated and given its input shape by
//! the rules of `kiln-shape`; nothing here knows a shape rule. Errors are collected,
//! never thrown, each spanned on the user's token. A layer whose output shape is
//! unknown (it failed, or one before it did) ends the shape checks silently, so each
//! real mistake gives one error, not a cascade.

use std::collections::HashSet;

use kiln_shape::{LayerSpec, Shape, ShapeError};
use proc_macro2::Span;
use syn::{Attribute, Ident, Visibility};

use crate::layers::{self, Kind};
use crate::parse::{Field, LayerField, ModelDef, ShapeField};
use crate::suggest::{self, did_you_mean};

/// What the struct needs even when the model is wrong: a stub of that name is emitted
/// so that the user's other uses of it do not fail too.
pub struct Header {
    /// The doc comments.
    pub docs: Vec<Attribute>,
    /// The visibility.
    pub vis: Visibility,
    /// The struct's name.
    pub name: Ident,
}

/// A model whose every layer fits.
pub struct Model {
    /// Name, docs and visibility.
    pub header: Header,
    /// One sample's input shape.
    pub input: Shape,
    /// Where the input shape is written, for the methods that take an input batch.
    pub input_span: Span,
    /// The layers, in order.
    pub layers: Vec<Layer>,
}

/// A checked layer.
pub struct Layer {
    /// The field name.
    pub name: Ident,
    /// The name as a string (raw identifiers unrawed).
    pub label: String,
    /// The kind and arguments as written: `Conv2d(32, 3, relu)`.
    pub source: String,
    /// The arguments.
    pub spec: LayerSpec,
    /// One sample's input shape.
    pub input: Shape,
    /// One sample's output shape.
    pub output: Shape,
    /// Trainable parameters.
    pub parameters: usize,
}

/// Checks the model; on failure returns its header (for the stub) and every error
/// combined into one.
pub fn check(def: ModelDef) -> Result<Model, (Header, syn::Error)> {
    let mut errors = def.errors;
    let docs = docs_only(def.attrs, &mut errors);
    let header = Header {
        docs,
        vis: def.vis,
        name: def.name,
    };

    let mut fields = def.fields.into_iter().peekable();
    let mut input_span = header.name.span();
    // `None`: no input (already reported, or a syntax error stands for it).
    let input = match fields.peek() {
        Some(Field::Shape(_)) => match fields.next() {
            Some(Field::Shape(shape)) => {
                input_span = shape.bracket.span.join();
                input_shape(&shape, &mut errors)
            }
            _ => None,
        },
        Some(Field::Layer(layer)) if layer.name == "input" => {
            errors.push(syn::Error::new_spanned(
                &layer.call,
                "`input` is the shape of one sample, like `[32, 32, 3]` or `[64]`",
            ));
            fields.next();
            None
        }
        Some(Field::Broken(_)) => None,
        Some(Field::Layer(_)) | None => {
            errors.push(syn::Error::new_spanned(
                &header.name,
                format!(
                    "`{}` has no input shape: begin with `input: [height, width, channels]` or `input: [features]`",
                    header.name
                ),
            ));
            None
        }
    };

    let mut checker = Checker {
        errors,
        names: HashSet::new(),
        layers: Vec::new(),
        current: input.map(|shape| (shape, None)),
        fields: 0,
    };
    for field in fields {
        checker.field(field);
    }
    let Checker {
        mut errors,
        layers,
        fields,
        ..
    } = checker;

    if fields == 0 && input.is_some() {
        errors.push(syn::Error::new_spanned(
            &header.name,
            format!(
                "`{}` has no layers: add at least one after its input",
                header.name
            ),
        ));
    }
    let mut errors = errors.into_iter();
    match (errors.next(), input) {
        (None, Some(input)) => Ok(Model {
            header,
            input,
            input_span,
            layers,
        }),
        (first, _) => {
            // A missing input is always reported, so `first` is never `None` here.
            let mut first = first.unwrap_or_else(|| {
                syn::Error::new_spanned(&header.name, "the model has no input shape")
            });
            first.extend(errors);
            Err((header, first))
        }
    }
}

/// Keeps the doc comments, and reports every other attribute.
fn docs_only(attrs: Vec<Attribute>, errors: &mut Vec<syn::Error>) -> Vec<Attribute> {
    let mut docs = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("doc") {
            docs.push(attr);
        } else if attr.path().is_ident("derive") {
            errors.push(syn::Error::new_spanned(
                &attr,
                "`#[derive]` is not available on a `model!` struct: the macro writes its impls, and its fields are backend buffers",
            ));
        } else {
            errors.push(syn::Error::new_spanned(
                &attr,
                "`model!` takes only doc comments (`///`) on its struct",
            ));
        }
    }
    docs
}

/// The input shape, if its dimensions are valid.
fn input_shape(field: &ShapeField, errors: &mut Vec<syn::Error>) -> Option<Shape> {
    if field.name != "input" {
        errors.push(syn::Error::new_spanned(
            &field.name,
            format!(
                "the input shape is named `input`, not `{}`: `input: [32, 32, 3]`",
                field.name
            ),
        ));
    }
    let before = errors.len();
    let mut dims = Vec::new();
    for lit in &field.dims {
        match lit.base10_parse::<usize>() {
            Ok(0) => errors.push(syn::Error::new_spanned(
                lit,
                "an input dimension must be at least 1, got 0",
            )),
            Ok(dim) => dims.push(dim),
            Err(err) => errors.push(err),
        }
    }
    if errors.len() > before {
        return None;
    }
    if !(1..=3).contains(&dims.len()) {
        errors.push(syn::Error::new_spanned(
            field,
            format!(
                "an input shape of rank {} is not supported: write `[features]`, `[time, features]` or `[height, width, channels]`",
                dims.len()
            ),
        ));
        return None;
    }
    Shape::try_new(&dims)
}

struct Checker {
    errors: Vec<syn::Error>,
    /// Layer names seen so far.
    names: HashSet<String>,
    layers: Vec<Layer>,
    /// The shape the next layer gets, and the layer that produced it (`None`: the
    /// input). `None` once a shape is unknown: later layers get no shape checks.
    current: Option<(Shape, Option<String>)>,
    /// Fields after the input.
    fields: usize,
}

impl Checker {
    fn field(&mut self, field: Field) {
        self.fields += 1;
        match field {
            Field::Broken(err) => {
                self.errors.push(err);
                self.current = None;
            }
            Field::Shape(shape) => {
                let message = if shape.name == "input" {
                    "the input shape must come first, before the layers"
                } else {
                    "only `input` takes a shape; a layer is written `name: Kind(args)`, like `fc1: Dense(128, relu)`"
                };
                self.errors.push(syn::Error::new_spanned(&shape, message));
                self.current = None;
            }
            Field::Layer(layer) => self.layer(layer),
        }
    }

    fn layer(&mut self, layer: LayerField) {
        self.name(&layer.name);
        let output = self.shape(&layer);
        self.current = output.map(|(shape, label)| (shape, Some(label)));
    }

    /// Checks the layer's name: unique, not reserved.
    fn name(&mut self, name: &Ident) {
        let label = label(name);
        if label == "input" {
            self.errors.push(syn::Error::new_spanned(
                name,
                "`input` names the model's input shape: give this layer another name",
            ));
        } else if label.starts_with("__") {
            self.errors.push(syn::Error::new_spanned(
                name,
                "layer names starting with `__` are reserved for the fields kiln generates",
            ));
        } else if !self.names.insert(label.clone()) {
            self.errors.push(syn::Error::new_spanned(
                name,
                format!(
                    "there is already a layer named `{label}`: layer names become the struct's fields and must be unique"
                ),
            ));
        }
    }

    /// Builds, validates and shape-checks the layer; its output shape and label when
    /// all is well.
    fn shape(&mut self, layer: &LayerField) -> Option<(Shape, String)> {
        let call = &layer.call;
        let kind_name = call.kind.to_string();
        let Some(kind) = Kind::from_name(&kind_name) else {
            let names = Kind::names();
            let tail = did_you_mean(&kind_name, &names, suggest::LAYER_ALIASES, || {
                format!("the layers are {}", suggest::list(&names))
            });
            self.errors.push(syn::Error::new_spanned(
                &call.kind,
                format!("unknown layer `{kind_name}`{tail}"),
            ));
            return None;
        };
        let bound = layers::bind(kind, call, &mut self.errors);
        let spec = bound.spec?;
        let label = label(&layer.name);
        let source = call.to_string();

        let mut problems = spec.validate();
        if problems
            .iter()
            .any(|p| bound.written.contains_key(p.argument))
        {
            // `MaxPool2d(0)` also has a zero stride, by default: one mistake.
            problems.retain(|p| bound.written.contains_key(p.argument));
        }
        for problem in &problems {
            let message = format!("`{label}: {source}`: {problem}");
            self.errors.push(match bound.written.get(problem.argument) {
                Some(tokens) => syn::Error::new_spanned(tokens, message),
                None => syn::Error::new_spanned(call, message),
            });
        }
        if !problems.is_empty() {
            return None;
        }

        let (input, from) = self.current.clone()?;
        match spec.output_shape(&input) {
            Ok(output) => {
                self.layers.push(Layer {
                    name: layer.name.clone(),
                    label: label.clone(),
                    source,
                    spec,
                    input,
                    output,
                    parameters: spec.parameter_count(&input),
                });
                Some((output, label))
            }
            Err(err) => {
                let message = shape_message(&label, &source, from.as_deref(), &err);
                self.errors.push(syn::Error::new_spanned(call, message));
                None
            }
        }
    }
}

/// `` `fc1: Dense(128)` expects a rank-1 input but `pool3` produces [2, 2, 128]: insert `Flatten` ``
fn shape_message(label: &str, source: &str, from: Option<&str>, err: &ShapeError) -> String {
    let got = match from {
        Some(from) => format!("`{from}` produces {}", err.got),
        None => format!("the input is {}", err.got),
    };
    let mut message = format!("`{label}: {source}` expects {} but {got}", err.expected);
    if let Some(hint) = &err.hint {
        message.push_str(": ");
        message.push_str(hint);
    }
    message
}

/// The identifier as a string, without `r#`.
fn label(ident: &Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#")
        .map_or_else(|| s.clone(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;
    use proc_macro2::TokenStream;
    use quote::quote;

    fn check_tokens(tokens: TokenStream) -> Result<Model, Vec<String>> {
        check(parse(tokens).unwrap())
            .map_err(|(_, err)| err.into_iter().map(|e| e.to_string()).collect())
    }

    fn errors(tokens: TokenStream) -> Vec<String> {
        match check_tokens(tokens) {
            Ok(_) => panic!("the model checked"),
            Err(errors) => errors,
        }
    }

    #[test]
    fn seed_cnn_checks() {
        let model = check_tokens(quote! {
            /// Docs.
            pub struct SeedCnn {
                input: [32, 32, 3],
                conv1: Conv2d(32, 3, relu),
                pool1: MaxPool2d(2),
                conv2: Conv2d(64, 3, relu),
                pool2: MaxPool2d(2),
                conv3: Conv2d(128, 3, relu),
                pool3: MaxPool2d(2),
                flat: Flatten,
                fc1: Dense(128, relu),
                out: Dense(10, softmax),
            }
        })
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(model.header.docs.len(), 1);
        assert_eq!(model.input, Shape::new(&[32, 32, 3]));
        assert_eq!(model.layers.len(), 9);
        let total: usize = model.layers.iter().map(|l| l.parameters).sum();
        assert_eq!(total, 160_202);
        assert_eq!(model.layers[5].output, Shape::new(&[2, 2, 128]));
        assert_eq!(model.layers[8].source, "Dense(10, softmax)");
    }

    #[test]
    fn dense_without_flatten_names_both_layers() {
        assert_eq!(
            errors(quote! {
                struct M { input: [8, 8, 3], pool: MaxPool2d(2), fc1: Dense(128) }
            }),
            [
                "`fc1: Dense(128)` expects a rank-1 input but `pool` produces [4, 4, 3]: insert `Flatten` (or `GlobalAvgPool2d`) before it"
            ]
        );
        assert_eq!(
            errors(quote! { struct M { input: [8, 8, 3], fc1: Dense(128) } }),
            [
                "`fc1: Dense(128)` expects a rank-1 input but the input is [8, 8, 3]: insert `Flatten` (or `GlobalAvgPool2d`) before it"
            ]
        );
    }

    #[test]
    fn after_a_shape_error_later_shapes_are_not_checked() {
        let errs = errors(quote! {
            struct M {
                input: [4, 4, 3],
                conv: Conv2d(8, 5),
                fc: Dense(10),
                drop: Dropout(2.0),
            }
        });
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("at least 5x5"), "{errs:?}");
        assert_eq!(
            errs[1],
            "`drop: Dropout(2.0)`: `rate` must be in [0, 1), got 2.0"
        );
    }

    #[test]
    fn spec_errors_count_once() {
        assert_eq!(
            errors(quote! { struct M { input: [4, 4, 3], p: MaxPool2d(0) } }),
            ["`p: MaxPool2d(0)`: `size` must be at least 1, got 0"]
        );
        assert_eq!(
            errors(quote! { struct M { input: [4], fc: Dense(units = 0) } }),
            ["`fc: Dense(units = 0)`: `units` must be at least 1, got 0"]
        );
    }

    #[test]
    fn names_and_input_errors() {
        assert_eq!(
            errors(quote! { struct M { conv: Conv2d(3, 3) } }),
            [
                "`M` has no input shape: begin with `input: [height, width, channels]` or `input: [features]`"
            ]
        );
        assert_eq!(
            errors(quote! { struct M { input: [4], a: Relu, a: Relu, __b: Relu } }),
            [
                "there is already a layer named `a`: layer names become the struct's fields and must be unique",
                "layer names starting with `__` are reserved for the fields kiln generates",
            ]
        );
        assert_eq!(
            errors(quote! { struct M { input: [4, 0] , a: Relu } }),
            ["an input dimension must be at least 1, got 0"]
        );
        assert_eq!(
            errors(quote! { struct M { input: [1, 2, 3, 4], a: Relu } }).len(),
            1
        );
        assert_eq!(
            errors(quote! { struct M { input: [4] } }),
            ["`M` has no layers: add at least one after its input"]
        );
        assert_eq!(
            errors(quote! { #[derive(Clone)] struct M { input: [4], a: Relu } }).len(),
            1
        );
    }

    #[test]
    fn unknown_layers_are_suggested() {
        assert_eq!(
            errors(
                quote! { struct M { input: [8, 8, 3], c: Conv2D(3, 3), p: MaxPooling2D(2), b: BatchNorm } }
            ),
            [
                "unknown layer `Conv2D`: did you mean `Conv2d`?",
                "unknown layer `MaxPooling2D`: did you mean `MaxPool2d`?",
                "unknown layer `BatchNorm`; the layers are `Dense`, `Conv2d`, `MaxPool2d`, `AvgPool2d`, `GlobalAvgPool2d`, `Flatten`, `Dropout`, `Relu`, `LeakyRelu`, `Sigmoid`, `Tanh`, `Gelu` and `Softmax`",
            ]
        );
    }

    #[test]
    fn rank_two_inputs_reach_the_shape_rules() {
        let model = check_tokens(quote! {
            struct Seq { input: [16, 8], act: Tanh, flat: Flatten, out: Dense(4) }
        })
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(model.layers[1].output, Shape::new(&[128]));
        assert_eq!(model.layers[2].parameters, 128 * 4 + 4);
        let errs = errors(quote! { struct Seq { input: [16, 8], c: Conv2d(4, 3) } });
        assert!(
            errs[0].starts_with("`c: Conv2d(4, 3)` expects a rank-3 input"),
            "{errs:?}"
        );
    }
}
