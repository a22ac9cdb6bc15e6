//! kiln values as tokens: the `::kiln::shape` literals and markers that the generated
//! code names, and the Rust that `kiln-shape` writes for specs and types.

use kiln_shape::{Activation, RustLiteral, Shape};
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// The compile-time marker of a shape (`::kiln::shape::Rank3<32, 32, 3>`,
/// `::kiln::shape::Tokens<64, 65>`).
pub fn marker(shape: &Shape) -> Option<TokenStream> {
    let dims: Vec<Literal> = shape.dims().iter().map(|d| lit(*d)).collect();
    if let Some(vocabulary) = shape.vocabulary() {
        let v = lit(vocabulary);
        return match dims.as_slice() {
            [t] => Some(quote!(::kiln::shape::Tokens<#t, #v>)),
            _ => None,
        };
    }
    match dims.as_slice() {
        [a] => Some(quote!(::kiln::shape::Rank1<#a>)),
        [a, b] => Some(quote!(::kiln::shape::Rank2<#a, #b>)),
        [a, b, c] => Some(quote!(::kiln::shape::Rank3<#a, #b, #c>)),
        _ => None,
    }
}

/// An unsuffixed integer literal.
pub fn lit(value: usize) -> Literal {
    Literal::usize_unsuffixed(value)
}

/// `::kiln::shape::Shape::new(&[..])`.
pub fn shape_tokens(shape: &Shape) -> TokenStream {
    let dims = shape.dims().iter().map(|d| lit(*d));
    match shape.vocabulary() {
        Some(vocabulary) => {
            let v = lit(vocabulary);
            quote!(::kiln::shape::Shape::tokens(&[#(#dims),*], #v))
        }
        None => quote!(::kiln::shape::Shape::new(&[#(#dims),*])),
    }
}

/// `::kiln::shape::Activation::..`.
pub fn activation_tokens(activation: &Activation) -> TokenStream {
    rust(&RustLiteral::rust(activation))
}

/// Rust source written by `kiln-shape` (a spec, a layer's type), as tokens. The
/// descriptions are kiln's own, so text that does not lex is kiln's bug; it becomes
/// a compile error that says so rather than a panic.
pub fn rust(source: &str) -> TokenStream {
    source.parse().unwrap_or_else(|_| {
        let message = format!("kiln: a layer description wrote Rust that does not parse: {source}");
        quote!(::core::compile_error!(#message))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_follow_the_rank() {
        let marker = |dims: &[usize]| marker(&Shape::new(dims)).map(|t| t.to_string());
        assert_eq!(
            marker(&[7]).as_deref(),
            Some(":: kiln :: shape :: Rank1 < 7 >")
        );
        assert_eq!(marker(&[1, 2, 3, 4]), None);
    }

    #[test]
    fn every_kind_writes_rust_that_parses() {
        for kind in kiln_shape::KINDS {
            let ty = rust(kind.runtime).to_string();
            assert!(!ty.contains("compile_error"), "{}", kind.runtime);
            assert!(
                syn::parse_str::<syn::Type>(kind.runtime).is_ok(),
                "{}",
                kind.runtime
            );
        }
        let slope = Activation::LeakyRelu {
            negative_slope: -0.25,
        };
        assert!(syn::parse_str::<syn::Expr>(&RustLiteral::rust(&slope)).is_ok());
    }
}
