//! kiln values as tokens: the `::kiln::shape` literals and `::kiln::nn` types that the
//! generated code names.

use kiln_shape::{Activation, LayerSpec, Padding, Pool2dSpec, Shape};
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// The `kiln-nn` type that runs a layer of this spec.
pub fn runtime_type(spec: &LayerSpec) -> TokenStream {
    match spec {
        LayerSpec::Dense(_) => quote!(::kiln::nn::Dense<B>),
        LayerSpec::Conv2d(_) => quote!(::kiln::nn::Conv2d<B>),
        LayerSpec::MaxPool2d(_) | LayerSpec::AvgPool2d(_) => quote!(::kiln::nn::Pool2d<B>),
        LayerSpec::GlobalAvgPool2d => quote!(::kiln::nn::GlobalAvgPool2d<B>),
        LayerSpec::Flatten => quote!(::kiln::nn::Flatten),
        LayerSpec::Dropout(_) => quote!(::kiln::nn::Dropout),
        LayerSpec::Activation(_) => quote!(::kiln::nn::ActivationLayer),
    }
}
/// The compile-time marker of a shape (`::kiln::shape::Rank3<32, 32, 3>`).
pub fn marker(shape: &Shape) -> Option<TokenStream> {
    let dims: Vec<Literal> = shape.dims().iter().map(|d| lit(*d)).collect();
    match dims.as_slice() {
        [a] => Some(quote!(::kiln::shape::Rank1<#a>)),
        [a, b] => Some(quote!(::kiln::shape::Rank2<#a, #b>)),
        [a, b, c] => Some(quote!(::kiln::shape::Rank3<#a, #b, #c>)),
        _ => None,
    }
}
pub fn lit(value: usize) -> Literal {
    Literal::usize_unsuffixed(value)
}

pub fn shape_tokens(shape: &Shape) -> TokenStream {
    let dims = shape.dims().iter().map(|d| lit(*d));
    quote!(::kiln::shape::Shape::new(&[#(#dims),*]))
}

pub fn pair(value: (usize, usize)) -> TokenStream {
    let (a, b) = (lit(value.0), lit(value.1));
    quote!((#a, #b))
}

/// An `f32` literal that survives the round trip through tokens exactly (a negative
/// value is a minus sign and a literal).
pub fn f32_tokens(value: f32) -> TokenStream {
    let magnitude = Literal::f32_suffixed(value.abs());
    if value.is_sign_negative() {
        quote!(-#magnitude)
    } else {
        quote!(#magnitude)
    }
}

pub fn padding_tokens(padding: Padding) -> TokenStream {
    match padding {
        Padding::Valid => quote!(::kiln::shape::Padding::Valid),
        Padding::Same => quote!(::kiln::shape::Padding::Same),
    }
}

pub fn activation_tokens(activation: &Activation) -> TokenStream {
    match activation {
        Activation::Linear => quote!(::kiln::shape::Activation::Linear),
        Activation::Relu => quote!(::kiln::shape::Activation::Relu),
        Activation::LeakyRelu { negative_slope } => {
            let slope = f32_tokens(*negative_slope);
            quote!(::kiln::shape::Activation::LeakyRelu { negative_slope: #slope })
        }
        Activation::Sigmoid => quote!(::kiln::shape::Activation::Sigmoid),
        Activation::Tanh => quote!(::kiln::shape::Activation::Tanh),
        Activation::Gelu => quote!(::kiln::shape::Activation::Gelu),
        Activation::Softmax => quote!(::kiln::shape::Activation::Softmax),
    }
}

pub fn pool_tokens(pool: &Pool2dSpec) -> TokenStream {
    let (size, stride, padding) = (
        pair(pool.size),
        pair(pool.stride),
        padding_tokens(pool.padding),
    );
    quote!(::kiln::shape::Pool2dSpec { size: #size, stride: #stride, padding: #padding })
}

/// The `::kiln::shape::LayerSpec` literal the layer is built from.
pub fn spec_tokens(spec: &LayerSpec) -> TokenStream {
    match spec {
        LayerSpec::Dense(d) => {
            let (units, activation) = (lit(d.units), activation_tokens(&d.activation));
            quote!(::kiln::shape::LayerSpec::Dense(::kiln::shape::DenseSpec {
                units: #units,
                activation: #activation,
            }))
        }
        LayerSpec::Conv2d(c) => {
            let filters = lit(c.filters);
            let (kernel, stride) = (pair(c.kernel), pair(c.stride));
            let padding = padding_tokens(c.padding);
            let activation = activation_tokens(&c.activation);
            quote!(::kiln::shape::LayerSpec::Conv2d(::kiln::shape::Conv2dSpec {
                filters: #filters,
                kernel: #kernel,
                stride: #stride,
                padding: #padding,
                activation: #activation,
            }))
        }
        LayerSpec::MaxPool2d(p) => {
            let pool = pool_tokens(p);
            quote!(::kiln::shape::LayerSpec::MaxPool2d(#pool))
        }
        LayerSpec::AvgPool2d(p) => {
            let pool = pool_tokens(p);
            quote!(::kiln::shape::LayerSpec::AvgPool2d(#pool))
        }
        LayerSpec::GlobalAvgPool2d => quote!(::kiln::shape::LayerSpec::GlobalAvgPool2d),
        LayerSpec::Flatten => quote!(::kiln::shape::LayerSpec::Flatten),
        LayerSpec::Dropout(d) => {
            let rate = f32_tokens(d.rate);
            quote!(::kiln::shape::LayerSpec::Dropout(::kiln::shape::DropoutSpec { rate: #rate }))
        }
        LayerSpec::Activation(a) => {
            let a = activation_tokens(a);
            quote!(::kiln::shape::LayerSpec::Activation(#a))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_floats_survive_the_tokens() {
        assert_eq!(f32_tokens(-0.25).to_string(), "- 0.25f32");
        assert_eq!(f32_tokens(0.3).to_string(), "0.3f32");
    }

    #[test]
    fn markers_follow_the_rank() {
        let marker = |dims: &[usize]| marker(&Shape::new(dims)).map(|t| t.to_string());
        assert_eq!(
            marker(&[7]).as_deref(),
            Some(":: kiln :: shape :: Rank1 < 7 >")
        );
        assert_eq!(marker(&[1, 2, 3, 4]), None);
    }
}
