//! Stage 1: the tokens of `model! { ... }` to an AST that keeps every span.
//!
//! The grammar is only syntax: which layers exist and what their arguments mean is
//! `layers.rs`'s business. A field that does not parse is recorded as
//! [`Field::Broken`] with its error and skipped up to the next comma, so that one typo
//! does not hide the errors of the other layers.

use std::fmt;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, LitFloat, LitInt, LitStr, Token, Visibility, token};

/// `model! { attrs vis struct Name { fields } }`.
pub struct ModelDef {
    /// The attributes on the struct, doc comments included.
    pub attrs: Vec<Attribute>,
    /// The struct's visibility.
    pub vis: Visibility,
    /// The struct's name.
    pub name: Ident,
    /// The fields in order: the input shape and the layers.
    pub fields: Vec<Field>,
    /// Syntax errors around the fields (generics, a missing body, trailing tokens).
    pub errors: Vec<syn::Error>,
}

/// One `name: ...` line of the model.
pub enum Field {
    /// `name: [dims]`: a shape (only `input` may have one).
    Shape(ShapeField),
    /// `name: Kind` or `name: Kind(args)`.
    Layer(LayerField),
    /// A field that did not parse, with its syntax error.
    Broken(syn::Error),
}

/// `input: [32, 32, 3]`, or token ids: `input: tokens[64] of 65`.
pub struct ShapeField {
    /// The field's name (`input`, unless the user erred).
    pub name: Ident,
    /// The brackets, for spans.
    pub bracket: token::Bracket,
    /// The dimensions as written.
    pub dims: Punctuated<LitInt, Token![,]>,
    /// For token ids, `tokens` and the vocabulary after `of`.
    pub tokens: Option<(Ident, LitInt)>,
}

/// `conv1: Conv2d(32, 3, relu)`.
pub struct LayerField {
    /// The layer's name.
    pub name: Ident,
    /// The layer's kind and arguments.
    pub call: LayerCall,
}

/// `Conv2d(32, 3, relu)`, `Flatten`, or a block: `Residual(activation = relu) { .. }`.
pub struct LayerCall {
    /// The layer or block kind as written.
    pub kind: Ident,
    /// The parenthesised arguments, when there are parentheses.
    pub args: Option<(token::Paren, Punctuated<Arg, Token![,]>)>,
    /// A block's layers, between braces.
    pub body: Option<(token::Brace, Vec<Field>)>,
}

/// One argument of a layer.
pub enum Arg {
    /// `32`
    Positional(Value),
    /// `filters = 32`
    Named {
        /// The argument's name.
        key: Ident,
        /// The `=`.
        eq: Token![=],
        /// The value.
        value: Value,
    },
}

/// An argument's value.
pub enum Value {
    /// `3`, `-3`.
    Int {
        /// A leading minus sign.
        neg: Option<Token![-]>,
        /// The literal.
        lit: LitInt,
    },
    /// `0.5`, `-0.1`.
    Float {
        /// A leading minus sign.
        neg: Option<Token![-]>,
        /// The literal.
        lit: LitFloat,
    },
    /// `relu`, `same`.
    Ident(Ident),
    /// `true`, `false`.
    Bool(syn::LitBool),
    /// `"same"`: never valid, but parsed to say "drop the quotes".
    Str(LitStr),
    /// `(3, 3)`.
    Tuple {
        /// The parentheses.
        paren: token::Paren,
        /// The items.
        items: Punctuated<Value, Token![,]>,
    },
}

/// Parses the whole macro input. Fails only when not even the struct's name can be
/// read; every later syntax error lands in [`ModelDef::errors`].
pub fn parse(tokens: TokenStream) -> syn::Result<ModelDef> {
    Parser::parse2(parse_model, tokens)
}

fn parse_model(input: ParseStream) -> syn::Result<ModelDef> {
    let attrs = input.call(Attribute::parse_outer)?;
    let vis: Visibility = input.parse()?;
    input.parse::<Token![struct]>()?;
    let name: Ident = input.parse()?;
    let mut model = ModelDef {
        attrs,
        vis,
        name,
        fields: Vec::new(),
        errors: Vec::new(),
    };
    if input.peek(Token![<]) {
        model.errors.push(input.error(
            "a `model!` struct takes no generic parameters: the backend parameter `B` is added for you",
        ));
        // Skip the generics so that the body still gets checked.
        skip_until_brace(input)?;
    }
    if !input.peek(token::Brace) {
        model.errors.push(
            input.error(
                "expected `{` and the model's fields: `input: [dims], name: Layer(args), ...`",
            ),
        );
        skip_rest(input)?;
        return Ok(model);
    }
    let content;
    syn::braced!(content in input);
    model.fields = parse_fields(&content)?;
    if !input.is_empty() {
        model.errors.push(
            input.error("unexpected tokens after the model: one `model!` declares one struct"),
        );
        skip_rest(input)?;
    }
    Ok(model)
}

/// The fields between braces, a broken one recorded and skipped up to the next comma.
fn parse_fields(content: ParseStream) -> syn::Result<Vec<Field>> {
    let mut fields = Vec::new();
    while !content.is_empty() {
        let fork = content.fork();
        match parse_field(&fork) {
            Ok(field) => {
                use syn::parse::discouraged::Speculative;
                content.advance_to(&fork);
                if content.is_empty() || content.peek(Token![,]) {
                    fields.push(field);
                    if !content.is_empty() {
                        content.parse::<Token![,]>()?;
                    }
                } else {
                    // The field may be fine but what follows is not: keep it out of the
                    // shape checks, as its extent is unclear.
                    let err = content.error("expected `,` after the layer");
                    fields.push(Field::Broken(err));
                    skip_past_comma(content)?;
                }
            }
            Err(err) => {
                fields.push(Field::Broken(err));
                skip_past_comma(content)?;
            }
        }
    }
    Ok(fields)
}

fn parse_field(input: ParseStream) -> syn::Result<Field> {
    if input.peek(Token![#]) {
        return Err(input
            .error("layers take no attributes or doc comments: document the model on its struct"));
    }
    let name: Ident = input.parse()?;
    input.parse::<Token![:]>()?;
    let tokens_word = if input.peek(Ident) && input.peek2(token::Bracket) {
        let word: Ident = input.parse()?;
        if word != "tokens" {
            return Err(syn::Error::new_spanned(
                &word,
                format!(
                    "unknown input kind `{word}`: write `tokens[time] of vocabulary` for token ids, or a shape like `[time, features]`"
                ),
            ));
        }
        Some(word)
    } else {
        None
    };
    if input.peek(token::Bracket) {
        let content;
        let bracket = syn::bracketed!(content in input);
        let dims = Punctuated::parse_terminated(&content)?;
        let tokens = match tokens_word {
            Some(word) => {
                let of: Ident = input.parse().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "expected `of` and the vocabulary: `tokens[64] of 65`",
                    )
                })?;
                if of != "of" {
                    return Err(syn::Error::new_spanned(
                        &of,
                        "expected `of` and the vocabulary: `tokens[64] of 65`",
                    ));
                }
                let vocabulary: LitInt = input.parse().map_err(|e| {
                    syn::Error::new(e.span(), "expected the vocabulary size: `tokens[64] of 65`")
                })?;
                Some((word, vocabulary))
            }
            None => None,
        };
        return Ok(Field::Shape(ShapeField {
            name,
            bracket,
            dims,
            tokens,
        }));
    }
    let kind: Ident = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a layer, like `Dense(128, relu)`, or for `input` a shape like `[32, 32, 3]`",
        )
    })?;
    let args = if input.peek(token::Paren) {
        let content;
        let paren = syn::parenthesized!(content in input);
        Some((
            paren,
            Punctuated::parse_terminated_with(&content, parse_arg)?,
        ))
    } else {
        None
    };
    let body = if input.peek(token::Brace) {
        let content;
        let brace = syn::braced!(content in input);
        Some((brace, parse_fields(&content)?))
    } else {
        None
    };
    Ok(Field::Layer(LayerField {
        name,
        call: LayerCall { kind, args, body },
    }))
}

fn parse_arg(input: ParseStream) -> syn::Result<Arg> {
    if input.peek(syn::Ident) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
        Ok(Arg::Named {
            key: input.parse()?,
            eq: input.parse()?,
            value: parse_value(input)?,
        })
    } else {
        Ok(Arg::Positional(parse_value(input)?))
    }
}

fn parse_value(input: ParseStream) -> syn::Result<Value> {
    let neg: Option<Token![-]> = input.parse()?;
    let lookahead = input.lookahead1();
    if lookahead.peek(LitInt) {
        Ok(Value::Int {
            neg,
            lit: input.parse()?,
        })
    } else if lookahead.peek(LitFloat) {
        Ok(Value::Float {
            neg,
            lit: input.parse()?,
        })
    } else if neg.is_some() {
        Err(lookahead.error())
    } else if input.peek(syn::LitBool) {
        Ok(Value::Bool(input.parse()?))
    } else if input.peek(syn::Ident) {
        Ok(Value::Ident(input.parse()?))
    } else if input.peek(LitStr) {
        Ok(Value::Str(input.parse()?))
    } else if input.peek(token::Paren) {
        let content;
        let paren = syn::parenthesized!(content in input);
        Ok(Value::Tuple {
            paren,
            items: Punctuated::parse_terminated_with(&content, parse_value)?,
        })
    } else {
        Err(input.error("expected a number, a name like `relu`, or a pair like `(3, 3)`"))
    }
}

/// Skips tokens up to and including the next top-level comma (token trees nest, so
/// commas inside parentheses are never seen).
fn skip_past_comma(input: ParseStream) -> syn::Result<()> {
    input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            rest = next;
            if matches!(&tt, proc_macro2::TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
        }
        Ok(((), rest))
    })
}

fn skip_until_brace(input: ParseStream) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(token::Brace) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

fn skip_rest(input: ParseStream) -> syn::Result<()> {
    input.parse::<TokenStream>().map(drop)
}

impl Value {
    /// The value as an unsigned integer, when it is a non-negative integer literal.
    pub fn as_usize(&self) -> Option<syn::Result<usize>> {
        match self {
            Self::Int { neg: None, lit } => Some(lit.base10_parse()),
            _ => None,
        }
    }

    /// The value as a number, when it is an integer or float literal.
    pub fn as_f32(&self) -> Option<syn::Result<f32>> {
        let (neg, value) = match self {
            Self::Int { neg, lit } => (neg, lit.base10_parse::<u64>().map(|v| v as f32)),
            Self::Float { neg, lit } => (neg, lit.base10_parse::<f32>()),
            _ => return None,
        };
        Some(value.map(|v| if neg.is_some() { -v } else { v }))
    }
}

impl ToTokens for Value {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Self::Int { neg, lit } => {
                neg.to_tokens(tokens);
                lit.to_tokens(tokens);
            }
            Self::Float { neg, lit } => {
                neg.to_tokens(tokens);
                lit.to_tokens(tokens);
            }
            Self::Ident(ident) => ident.to_tokens(tokens),
            Self::Bool(lit) => lit.to_tokens(tokens),
            Self::Str(lit) => lit.to_tokens(tokens),
            Self::Tuple { paren, items } => paren.surround(tokens, |t| items.to_tokens(t)),
        }
    }
}

impl ToTokens for Arg {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Self::Positional(value) => value.to_tokens(tokens),
            Self::Named { key, eq, value } => {
                key.to_tokens(tokens);
                eq.to_tokens(tokens);
                value.to_tokens(tokens);
            }
        }
    }
}

/// The kind and its arguments (a block's body is left out: an error on a block
/// points at its head).
impl ToTokens for LayerCall {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.kind.to_tokens(tokens);
        if let Some((paren, args)) = &self.args {
            paren.surround(tokens, |t| args.to_tokens(t));
        }
    }
}

impl ToTokens for ShapeField {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.name.to_tokens(tokens);
        if let Some((word, _)) = &self.tokens {
            word.to_tokens(tokens);
        }
        self.bracket.surround(tokens, |t| self.dims.to_tokens(t));
        if let Some((_, vocabulary)) = &self.tokens {
            vocabulary.to_tokens(tokens);
        }
    }
}

/// Writes a value as the user wrote it: `3`, `-0.1`, `(3, 3)`, `"same"`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int { neg, lit } => write!(f, "{}{lit}", if neg.is_some() { "-" } else { "" }),
            Self::Float { neg, lit } => {
                write!(f, "{}{lit}", if neg.is_some() { "-" } else { "" })
            }
            Self::Ident(ident) => write!(f, "{ident}"),
            Self::Bool(lit) => write!(f, "{}", lit.value),
            Self::Str(lit) => write!(f, "{:?}", lit.value()),
            Self::Tuple { items, .. } => {
                f.write_str("(")?;
                write_list(f, items.iter())?;
                f.write_str(")")
            }
        }
    }
}

/// Writes an argument as the user wrote it: `3` or `kernel = (3, 3)`.
impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Positional(value) => write!(f, "{value}"),
            Self::Named { key, value, .. } => write!(f, "{key} = {value}"),
        }
    }
}

/// Writes a layer as the user wrote it: `Conv2d(32, 3, relu)` or `Flatten` (a
/// block's body is left out).
impl fmt::Display for LayerCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some((_, args)) = &self.args {
            f.write_str("(")?;
            write_list(f, args.iter())?;
            f.write_str(")")?;
        }
        Ok(())
    }
}

fn write_list<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    items: impl Iterator<Item = T>,
) -> fmt::Result {
    for (i, item) in items.enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn model(tokens: TokenStream) -> ModelDef {
        match parse(tokens) {
            Ok(model) => model,
            Err(err) => panic!("{err}"),
        }
    }

    fn layer(field: &Field) -> &LayerField {
        match field {
            Field::Layer(layer) => layer,
            _ => panic!("not a layer"),
        }
    }

    #[test]
    fn seed_cnn_parses() {
        let m = model(quote! {
            /// Docs.
            pub struct SeedCnn {
                input: [32, 32, 3],
                conv1: Conv2d(32, 3, relu),
                pool1: MaxPool2d(2),
                flat: Flatten,
                out: Dense(units = 10, activation = softmax),
            }
        });
        assert!(m.errors.is_empty());
        assert_eq!(m.name, "SeedCnn");
        assert_eq!(m.attrs.len(), 1);
        assert_eq!(m.fields.len(), 5);
        let Field::Shape(input) = &m.fields[0] else {
            panic!("input is not a shape")
        };
        assert_eq!(input.dims.len(), 3);
        assert_eq!(layer(&m.fields[1]).call.to_string(), "Conv2d(32, 3, relu)");
        assert_eq!(layer(&m.fields[3]).call.to_string(), "Flatten");
        assert_eq!(
            layer(&m.fields[4]).call.to_string(),
            "Dense(units = 10, activation = softmax)"
        );
    }

    #[test]
    fn values_keep_their_sign_and_shape() {
        let m = model(quote! {
            struct M { input: [4], a: Dropout(-0.25), b: Conv2d(8, kernel = (3, 5), padding = "same"), }
        });
        assert!(m.errors.is_empty());
        assert_eq!(layer(&m.fields[1]).call.to_string(), "Dropout(-0.25)");
        let Some((_, args)) = &layer(&m.fields[1]).call.args else {
            panic!("no args")
        };
        let Arg::Positional(rate) = &args[0] else {
            panic!("not positional")
        };
        assert_eq!(rate.as_f32().map(Result::ok), Some(Some(-0.25)));
        assert_eq!(
            layer(&m.fields[2]).call.to_string(),
            "Conv2d(8, kernel = (3, 5), padding = \"same\")"
        );
    }

    #[test]
    fn a_broken_field_is_skipped_and_the_rest_kept() {
        let m = model(quote! {
            struct M { input: [4], a: Dense(4 4), b: Dense(3), c: 5, d: Dense(2) }
        });
        assert!(m.errors.is_empty());
        assert_eq!(m.fields.len(), 5);
        assert!(matches!(m.fields[1], Field::Broken(_)));
        assert!(matches!(m.fields[2], Field::Layer(_)));
        assert!(matches!(m.fields[3], Field::Broken(_)));
        assert_eq!(layer(&m.fields[4]).name, "d");
    }

    #[test]
    fn blocks_parse_with_their_bodies() {
        let m = model(quote! {
            struct M {
                input: [4],
                res: Residual(activation = relu) { a: Dense(4), inner: Sequential { b: Relu, }, },
                bad: Concat { x: Dense(4 4), y: Dense(2) },
            }
        });
        assert!(m.errors.is_empty());
        let res = layer(&m.fields[1]);
        assert_eq!(res.call.to_string(), "Residual(activation = relu)");
        let Some((_, body)) = &res.call.body else {
            panic!("no body")
        };
        assert_eq!(body.len(), 2);
        let Some((_, inner)) = &layer(&body[1]).call.body else {
            panic!("no inner body")
        };
        assert_eq!(layer(&inner[0]).call.to_string(), "Relu");
        // A broken field inside a block is kept as such, and the rest parsed.
        let Some((_, bad)) = &layer(&m.fields[2]).call.body else {
            panic!("no body")
        };
        assert!(matches!(bad[0], Field::Broken(_)));
        assert_eq!(layer(&bad[1]).name, "y");
    }

    #[test]
    fn missing_body_keeps_the_name_for_the_stub() {
        let m = model(quote! { pub struct M; });
        assert_eq!(m.name, "M");
        assert_eq!(m.errors.len(), 1);
    }

    #[test]
    fn no_struct_is_an_error() {
        assert!(parse(quote! { input: [3] }).is_err());
    }
}
