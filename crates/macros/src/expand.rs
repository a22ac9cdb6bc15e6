//! Stage 3: a checked model to tokens.
//!
//! The generated struct owns its layers (public fields named after them) and a
//! workspace sized once for `max_batch`: the input, one activation buffer per layer
//! and two gradient buffers used in turn. `forward` and `backward` are straight-line
//! calls to each layer, with no loop, tape or allocation. `Flatten` has no buffer and
//! is never run: NHWC memory is already in flattened order, so the next layer reads
//! the buffer before it and the gradient passes through unchanged.
//!
//! Every path is absolute (`::kiln::...`), so the code does not depend on the user's
//! imports.

use kiln_shape::{Activation, LayerSpec, Shape};
use proc_macro2::{Group, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote};

use crate::check::{Header, Layer, Model};
use crate::literals::{activation_tokens, lit, marker, runtime_type, shape_tokens, spec_tokens};

/// A model with errors: every error, and a placeholder struct of the model's name, so
/// that the user's mentions of the type do not add "cannot find type" errors.
pub fn stub(header: &Header, errors: syn::Error) -> TokenStream {
    let Header { docs, vis, name } = header;
    let errors = errors.into_compile_error();
    quote! {
        #errors
        #(#docs)*
        #[allow(dead_code)]
        #vis struct #name<B = ::kiln::Cpu>(::core::marker::PhantomData<B>);
    }
}

/// The model's struct, its inherent impl and its `Model` impl.
pub fn expand(model: &Model) -> TokenStream {
    let Some(input_marker) = marker(&model.input) else {
        return unsupported(model, &model.input);
    };
    let output_shape = model.layers.last().map_or(model.input, |l| l.output);
    let Some(output_marker) = marker(&output_shape) else {
        return unsupported(model, &output_shape);
    };
    let Header { docs, vis, name } = &model.header;
    let label = name.to_string();
    let label = label.strip_prefix("r#").unwrap_or(&label);

    let plan = Plan::new(model);
    let consts = Consts::new(model, &output_shape);
    let Consts {
        parameters,
        input_shape,
        output_shape: output_shape_tokens,
        layers: layer_table,
        output_activation,
        activation_floats,
    } = &consts;

    let struct_docs = struct_docs(model, docs.is_empty());
    let fields = plan.fields(model);
    let build = plan.build(model);
    let forward = plan.forward(model);
    let backward = plan.backward(model);
    let output_buffer = &plan.output;
    let input_size = lit(model.input.size());
    let output_size = lit(output_shape.size());
    let per_layer = model.layers.iter().filter(|l| !is_flatten(l));
    let visit = per_layer.clone().map(|l| {
        let (field, ty, label) = (&l.name, runtime_type(&l.spec), &l.label);
        quote! { <#ty as ::kiln::nn::Layer<B>>::visit_parameters(&mut self.#field, #label, &mut *f)?; }
    });
    let params = per_layer.map(|l| {
        let (field, ty, label) = (&l.name, runtime_type(&l.spec), &l.label);
        quote! { <#ty as ::kiln::nn::Layer<B>>::parameters(&self.#field, #label, &mut *f)?; }
    });

    // A batch of the wrong shape is a type error whose "defined here" note points at
    // the model's input shape. Located there, resolved at the call site as the rest.
    let at_input = Span::call_site().located_at(model.input_span);
    let forward_sig = respan(
        quote!(forward(&mut self, x: &::kiln::Tensor<#input_marker, B>, mode: ::kiln::nn::Mode)),
        at_input,
    );
    let result = quote!(::kiln::nn::Result);
    let tensor_in = quote!(::kiln::Tensor<#input_marker, B>);
    let tensor_out = quote!(::kiln::Tensor<#output_marker, B>);
    let view_out = quote!(::kiln::TensorRef<'_, #output_marker, B>);
    let param_mut = quote!(&mut dyn ::core::ops::FnMut(::kiln::nn::ParamMut<'a, B>) -> #result<()>);
    let param_ref = quote!(&mut dyn ::core::ops::FnMut(::kiln::nn::ParamRef<'a, B>) -> #result<()>);

    quote! {
        #(#docs)*
        #struct_docs
        #vis struct #name<B: ::kiln::Backend = ::kiln::Cpu> {
            #fields
        }

        impl<B: ::kiln::Backend> #name<B> {
            /// The struct's name.
            pub const NAME: &'static str = #label;
            /// Trainable parameters in all.
            pub const PARAMETERS: usize = #parameters;
            /// The per-sample input shape.
            pub const INPUT_SHAPE: ::kiln::shape::Shape = #input_shape;
            /// The per-sample output shape.
            pub const OUTPUT_SHAPE: ::kiln::shape::Shape = #output_shape_tokens;
            /// Every layer: name, kind, per-sample output shape, parameters.
            pub const LAYERS: &'static [::kiln::nn::LayerInfo] = #layer_table;
            /// The activation of the layer that `backward`'s `GradAt` refers to, if any.
            pub const OUTPUT_ACTIVATION: ::core::option::Option<::kiln::shape::Activation> = #output_activation;
            /// Activation values one sample keeps in the workspace, input included.
            pub const ACTIVATION_FLOATS_PER_SAMPLE: usize = #activation_floats;

            /// A Keras-like table of the layers, their output shapes and parameters.
            pub fn summary() -> ::std::string::String {
                ::kiln::nn::summary(Self::NAME, Self::INPUT_SHAPE, Self::LAYERS)
            }

            /// Builds the model on `backend` for batches of up to `max_batch` samples,
            /// with parameters initialised from `seed`.
            pub fn new(backend: &B, max_batch: usize, seed: u64) -> #result<Self> {
                if max_batch == 0 {
                    return ::core::result::Result::Err(::kiln::nn::Error::ZeroMaxBatch { model: Self::NAME });
                }
                if max_batch.checked_mul(Self::ACTIVATION_FLOATS_PER_SAMPLE).is_none() {
                    return ::core::result::Result::Err(::kiln::nn::Error::MaxBatchTooLarge { model: Self::NAME, max_batch });
                }
                let mut __rng = ::kiln::kernels::rng::Rng::new(seed);
                ::core::result::Result::Ok(Self { #build })
            }

            /// The backend the model lives on.
            pub fn backend(&self) -> &B {
                &self.__backend
            }

            /// The largest batch the workspace holds.
            pub fn max_batch(&self) -> usize {
                self.__max_batch
            }

            /// Runs the network on the batch `x`; the output lives in the workspace
            /// until the next forward.
            pub fn #forward_sig -> #result<#view_out> {
                let batch = x.batch();
                self.__check_batch(batch)?;
                ::kiln::Storage::copy(&self.__backend, x.buffer(), &mut self.__input, batch * #input_size)?;
                self.__forward(batch, mode)?;
                ::core::result::Result::Ok(self.output())
            }

            /// Like `forward`, on host data (samples in row-major order) uploaded
            /// straight into the workspace.
            pub fn forward_host(&mut self, x: &[f32], mode: ::kiln::nn::Mode) -> #result<#view_out> {
                if x.len() % #input_size != 0 {
                    return ::core::result::Result::Err(::kiln::nn::Error::InputLength {
                        model: Self::NAME,
                        len: x.len(),
                        sample: Self::INPUT_SHAPE,
                    });
                }
                let batch = x.len() / #input_size;
                self.__check_batch(batch)?;
                ::kiln::Storage::upload(&self.__backend, x, &mut self.__input)?;
                self.__forward(batch, mode)?;
                ::core::result::Result::Ok(self.output())
            }

            /// The last forward's output.
            pub fn output(&self) -> #view_out {
                ::kiln::TensorRef::new(&self.#output_buffer, self.__batch)
            }

            /// Back-propagates `grad` (at the output, or at the last layer's
            /// pre-activation) through the last forward, accumulating every
            /// parameter's gradient.
            pub fn backward(&mut self, grad: &#tensor_out, at: ::kiln::nn::GradAt) -> #result<()> {
                let batch = self.__batch;
                if batch == 0 {
                    return ::core::result::Result::Err(::kiln::nn::Error::BackwardBeforeForward { model: Self::NAME });
                }
                if grad.batch() != batch {
                    return ::core::result::Result::Err(::kiln::nn::Error::BatchMismatch {
                        model: Self::NAME,
                        forward: batch,
                        backward: grad.batch(),
                    });
                }
                ::kiln::Storage::copy(&self.__backend, grad.buffer(), &mut self.__grad_a, batch * #output_size)?;
                #backward
                ::core::result::Result::Ok(())
            }

            /// Sets every parameter gradient to zero (a GPU zeroes up to sixteen
            /// tensors in one launch).
            pub fn zero_grad(&mut self) -> #result<()> {
                let backend = ::core::clone::Clone::clone(&self.__backend);
                ::kiln::nn::zero_gradients(&backend, |f| self.visit_parameters(f))
            }

            /// Calls `f` on every trainable tensor, in layer order.
            pub fn visit_parameters<'a>(&'a mut self, f: #param_mut) -> #result<()> {
                #(#visit)*
                ::core::result::Result::Ok(())
            }

            /// Calls `f` on every trainable tensor, in layer order, read-only.
            pub fn parameters<'a>(&'a self, f: #param_ref) -> #result<()> {
                #(#params)*
                ::core::result::Result::Ok(())
            }

            fn __check_batch(&self, batch: usize) -> #result<()> {
                if batch == 0 {
                    return ::core::result::Result::Err(::kiln::nn::Error::EmptyBatch { model: Self::NAME });
                }
                if batch > self.__max_batch {
                    return ::core::result::Result::Err(::kiln::nn::Error::BatchTooLarge {
                        model: Self::NAME,
                        batch,
                        max: self.__max_batch,
                    });
                }
                ::core::result::Result::Ok(())
            }

            fn __forward(&mut self, batch: usize, mode: ::kiln::nn::Mode) -> #result<()> {
                // Until every layer has run, there is nothing to back-propagate.
                self.__batch = 0;
                #forward
                self.__batch = batch;
                ::core::result::Result::Ok(())
            }
        }

        impl<B: ::kiln::Backend> ::kiln::nn::Model<B> for #name<B> {
            type Input = #input_marker;
            type Output = #output_marker;
            // Inherent items come first in path resolution: these are the ones above.
            const NAME: &'static str = #name::<B>::NAME;
            const PARAMETERS: usize = #name::<B>::PARAMETERS;
            const INPUT_SHAPE: ::kiln::shape::Shape = #name::<B>::INPUT_SHAPE;
            const OUTPUT_SHAPE: ::kiln::shape::Shape = #name::<B>::OUTPUT_SHAPE;
            const LAYERS: &'static [::kiln::nn::LayerInfo] = #name::<B>::LAYERS;
            const OUTPUT_ACTIVATION: ::core::option::Option<::kiln::shape::Activation> =
                #name::<B>::OUTPUT_ACTIVATION;
            const ACTIVATION_FLOATS_PER_SAMPLE: usize = #name::<B>::ACTIVATION_FLOATS_PER_SAMPLE;

            fn new(backend: &B, max_batch: usize, seed: u64) -> #result<Self> {
                #name::<B>::new(backend, max_batch, seed)
            }
            fn backend(&self) -> &B {
                #name::<B>::backend(self)
            }
            fn max_batch(&self) -> usize {
                #name::<B>::max_batch(self)
            }
            fn forward(&mut self, x: &#tensor_in, mode: ::kiln::nn::Mode) -> #result<#view_out> {
                #name::<B>::forward(self, x, mode)
            }
            fn forward_host(&mut self, x: &[f32], mode: ::kiln::nn::Mode) -> #result<#view_out> {
                #name::<B>::forward_host(self, x, mode)
            }
            fn output(&self) -> #view_out {
                #name::<B>::output(self)
            }
            fn backward(&mut self, grad: &#tensor_out, at: ::kiln::nn::GradAt) -> #result<()> {
                #name::<B>::backward(self, grad, at)
            }
            fn zero_grad(&mut self) -> #result<()> {
                #name::<B>::zero_grad(self)
            }
            fn visit_parameters<'a>(&'a mut self, f: #param_mut) -> #result<()> {
                #name::<B>::visit_parameters(self, f)
            }
            fn parameters<'a>(&'a self, f: #param_ref) -> #result<()> {
                #name::<B>::parameters(self, f)
            }
        }
    }
}

/// Which buffer each layer reads and writes.
struct Plan {
    /// Per layer: the buffer field it reads.
    inputs: Vec<proc_macro2::Ident>,
    /// Per layer: the buffer field holding its output (for `Flatten`, its input's).
    outputs: Vec<proc_macro2::Ident>,
    /// The buffer holding the model's output.
    output: proc_macro2::Ident,
    /// Floats per sample of the largest buffer a gradient passes through.
    grad_size: usize,
    /// Whether `backward` needs the second gradient buffer.
    needs_grad_b: bool,
}

impl Plan {
    fn new(model: &Model) -> Plan {
        let input = format_ident!("__input");
        let mut inputs = Vec::new();
        let mut outputs: Vec<proc_macro2::Ident> = Vec::new();
        for layer in &model.layers {
            let reads = outputs.last().cloned().unwrap_or_else(|| input.clone());
            let writes = if is_flatten(layer) {
                reads.clone()
            } else {
                format_ident!("__act_{}", layer.label)
            };
            inputs.push(reads);
            outputs.push(writes);
        }
        let output = outputs.last().cloned().unwrap_or(input);
        let grad_size = model
            .layers
            .iter()
            .map(|l| l.output.size())
            .chain([model.input.size()])
            .max()
            .unwrap_or(0);
        let running = model.layers.iter().filter(|l| !is_flatten(l)).count();
        Plan {
            inputs,
            outputs,
            output,
            grad_size,
            needs_grad_b: running > 1,
        }
    }

    /// The struct's fields: layers, then the workspace.
    fn fields(&self, model: &Model) -> TokenStream {
        let layers = model.layers.iter().map(|l| {
            let (name, ty) = (&l.name, runtime_type(&l.spec));
            let doc = format!(
                " `{}`: output `{}`, {} parameters.",
                l.source, l.output, l.parameters
            );
            quote! {
                #[doc = #doc]
                pub #name: #ty,
            }
        });
        let activations = model.layers.iter().filter(|l| !is_flatten(l)).map(|l| {
            let field = format_ident!("__act_{}", l.label);
            quote! { #field: <B as ::kiln::Storage>::Buffer, }
        });
        let grad_b = self
            .needs_grad_b
            .then(|| quote! { __grad_b: <B as ::kiln::Storage>::Buffer, });
        quote! {
            #(#layers)*
            __backend: B,
            __max_batch: usize,
            __batch: usize,
            __input: <B as ::kiln::Storage>::Buffer,
            #(#activations)*
            __grad_a: <B as ::kiln::Storage>::Buffer,
            #grad_b
        }
    }

    /// The field initialisers of `new`. Struct fields are evaluated in the order
    /// written, so layer `i` gets the `i`-th fork of the seed's generator.
    fn build(&self, model: &Model) -> TokenStream {
        let layers = model.layers.iter().enumerate().map(|(i, l)| {
            let (name, ty) = (&l.name, runtime_type(&l.spec));
            let spec = spec_tokens(&l.spec);
            let input = shape_tokens(&l.input);
            let stream = Literal::u64_suffixed(i as u64);
            quote! {
                #name: <#ty as ::kiln::nn::Layer<B>>::build(
                    backend, &#spec, #input, max_batch, &mut __rng.fork(#stream),
                )?,
            }
        });
        let alloc = |field: &proc_macro2::Ident, size: usize| {
            let size = lit(size);
            quote! { #field: ::kiln::Storage::alloc(backend, max_batch * #size)?, }
        };
        let input = alloc(&format_ident!("__input"), model.input.size());
        let activations = model
            .layers
            .iter()
            .filter(|l| !is_flatten(l))
            .map(|l| alloc(&format_ident!("__act_{}", l.label), l.output.size()));
        let grad_a = alloc(&format_ident!("__grad_a"), self.grad_size);
        let grad_b = self
            .needs_grad_b
            .then(|| alloc(&format_ident!("__grad_b"), self.grad_size));
        quote! {
            #(#layers)*
            #input
            #(#activations)*
            #grad_a
            #grad_b
            __backend: ::core::clone::Clone::clone(backend),
            __max_batch: max_batch,
            __batch: 0,
        }
    }

    /// Each layer's forward, in order; `Flatten` runs nothing.
    fn forward(&self, model: &Model) -> TokenStream {
        let calls = model
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| !is_flatten(l))
            .map(|(i, l)| {
                let (field, ty) = (&l.name, runtime_type(&l.spec));
                let (x, y) = (&self.inputs[i], &self.outputs[i]);
                quote! {
                    <#ty as ::kiln::nn::Layer<B>>::forward(
                        &mut self.#field, &self.__backend, &self.#x, &mut self.#y, batch, mode,
                    )?;
                }
            });
        quote! { #(#calls)* }
    }

    /// Each layer's backward, in reverse, the gradient going from `__grad_a` to
    /// `__grad_b` and back. Only the last layer that runs gets the caller's `GradAt`;
    /// the first one computes no input gradient. A `MaxPool2d` right after a ReLU
    /// passes its gradient through that ReLU too (one pass over the large input
    /// gradient instead of two), and the layer before skips its activation's backward.
    fn backward(&self, model: &Model) -> TokenStream {
        let running: Vec<usize> = (0..model.layers.len())
            .filter(|&i| !is_flatten(&model.layers[i]))
            .collect();
        let (grad_a, grad_b) = (format_ident!("__grad_a"), format_ident!("__grad_b"));
        let through_relu =
            |i: usize| i > 0 && max_pool_after_relu(&model.layers[i - 1], &model.layers[i]);
        let mut calls = Vec::new();
        for (step, &i) in running.iter().rev().enumerate() {
            let layer = &model.layers[i];
            let (field, ty) = (&layer.name, runtime_type(&layer.spec));
            let (x, y) = (&self.inputs[i], &self.outputs[i]);
            let (dy, dx) = if step % 2 == 0 {
                (&grad_a, &grad_b)
            } else {
                (&grad_b, &grad_a)
            };
            let dx = if step + 1 == running.len() {
                quote!(::core::option::Option::None)
            } else {
                quote!(::core::option::Option::Some(&mut self.#dx))
            };
            let at = if step == 0 {
                quote!(at)
            } else if i + 1 < model.layers.len() && through_relu(i + 1) {
                quote!(::kiln::nn::GradAt::PreActivation)
            } else {
                quote!(::kiln::nn::GradAt::Output)
            };
            if through_relu(i) {
                if step == 0 {
                    // Pooling has no activation for `at` to refer to.
                    calls.push(quote! { let _ = at; });
                }
                calls.push(quote! {
                    ::kiln::nn::Pool2d::<B>::backward_through_relu(
                        &mut self.#field, &self.__backend, &self.#x, &self.#y,
                        &mut self.#dy, #dx, batch,
                    )?;
                });
                continue;
            }
            calls.push(quote! {
                <#ty as ::kiln::nn::Layer<B>>::backward(
                    &mut self.#field, &self.__backend, &self.#x, &self.#y,
                    &mut self.#dy, #dx, batch, #at,
                )?;
            });
        }
        if running.is_empty() {
            // Nothing runs, so `at` has no layer to go to.
            calls.push(quote! { let _ = at; });
        }
        quote! { #(#calls)* }
    }
}

/// Whether `layer` is a `MaxPool2d` whose input is the output of a ReLU: a layer with
/// `activation = relu`, or a `Relu` layer.
fn max_pool_after_relu(before: &Layer, layer: &Layer) -> bool {
    let relu = match before.spec {
        LayerSpec::Conv2d(c) => c.activation == Activation::Relu,
        LayerSpec::Dense(d) => d.activation == Activation::Relu,
        LayerSpec::Activation(a) => a == Activation::Relu,
        _ => false,
    };
    relu && matches!(layer.spec, LayerSpec::MaxPool2d(_))
}

/// The constants, as tokens shared by the inherent impl and the `Model` impl.
struct Consts {
    parameters: Literal,
    input_shape: TokenStream,
    output_shape: TokenStream,
    layers: TokenStream,
    output_activation: TokenStream,
    activation_floats: Literal,
}

impl Consts {
    fn new(model: &Model, output: &Shape) -> Consts {
        let rows = model.layers.iter().map(|l| {
            let (name, kind) = (&l.label, l.spec.kind());
            let shape = shape_tokens(&l.output);
            let parameters = lit(l.parameters);
            quote! {
                ::kiln::nn::LayerInfo {
                    name: #name,
                    kind: #kind,
                    output_shape: #shape,
                    parameters: #parameters,
                }
            }
        });
        // The activation that `GradAt::PreActivation` skips: the last layer that runs.
        let last = model.layers.iter().rev().find(|l| !is_flatten(l));
        let output_activation = match last.and_then(|l| l.spec.activation()) {
            Some(a) => {
                let a = activation_tokens(&a);
                quote!(::core::option::Option::Some(#a))
            }
            None => quote!(::core::option::Option::None),
        };
        let activation_floats = model.input.size()
            + model
                .layers
                .iter()
                .filter(|l| !is_flatten(l))
                .map(|l| l.output.size())
                .sum::<usize>();
        Consts {
            parameters: lit(model.layers.iter().map(|l| l.parameters).sum()),
            input_shape: shape_tokens(&model.input),
            output_shape: shape_tokens(output),
            layers: quote!(&[#(#rows),*]),
            output_activation,
            activation_floats: lit(activation_floats),
        }
    }
}

/// The user's docs are kept; a line on the model follows them (or stands alone).
fn struct_docs(model: &Model, alone: bool) -> TokenStream {
    let parameters: usize = model.layers.iter().map(|l| l.parameters).sum();
    let mut text = format!(
        " A network declared with `kiln::model!`: input `{}`, {} layers, {parameters} parameters.",
        model.input,
        model.layers.len()
    );
    if !alone {
        text.insert(0, '\n');
    }
    let layers: Vec<String> = model
        .layers
        .iter()
        .map(|l| format!(" - `{}: {}` -> `{}`", l.label, l.source, l.output))
        .collect();
    quote! {
        #[doc = #text]
        #[doc = ""]
        #(#[doc = #layers])*
    }
}

fn is_flatten(layer: &Layer) -> bool {
    layer.spec == LayerSpec::Flatten
}
fn unsupported(model: &Model, shape: &Shape) -> TokenStream {
    let message = format!(
        "kiln has no compile-time marker for the rank-{} shape {shape} yet",
        shape.rank()
    );
    stub(
        &model.header,
        syn::Error::new_spanned(&model.header.name, message),
    )
}

/// `tokens`, every one of them given `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = TokenTree::Group(inner);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check;
    use crate::parse::parse;
    use quote::ToTokens;

    fn expanded(tokens: TokenStream) -> syn::File {
        let model = check(parse(tokens).unwrap()).unwrap_or_else(|(_, e)| panic!("{e}"));
        syn::parse2(expand(&model)).unwrap()
    }

    /// The tokens of the body of the inherent method `name`, space-separated.
    fn method(file: &syn::File, name: &str) -> String {
        file.items
            .iter()
            .filter_map(|item| match item {
                syn::Item::Impl(i) if i.trait_.is_none() => Some(i),
                _ => None,
            })
            .flat_map(|i| &i.items)
            .find_map(|item| match item {
                syn::ImplItem::Fn(f) if f.sig.ident == name => {
                    Some(f.block.to_token_stream().to_string())
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no method {name}"))
    }

    fn seed() -> syn::File {
        expanded(quote! {
            pub struct SeedCnn {
                input: [32, 32, 3],
                conv1: Conv2d(32, 3, relu),
                pool1: MaxPool2d(2),
                flat: Flatten,
                fc1: Dense(128, relu),
                drop: Dropout(0.5),
                out: Dense(10, softmax),
            }
        })
    }

    #[test]
    fn struct_and_two_impls() {
        let file = seed();
        assert_eq!(file.items.len(), 3);
        let syn::Item::Struct(s) = &file.items[0] else {
            panic!("no struct first")
        };
        let fields: Vec<String> = s
            .fields
            .iter()
            .filter_map(|f| f.ident.as_ref().map(ToString::to_string))
            .collect();
        assert_eq!(
            &fields[..6],
            ["conv1", "pool1", "flat", "fc1", "drop", "out"]
        );
        // Flatten has no activation buffer: the next layer reads the one before it.
        assert!(!fields.contains(&"__act_flat".to_string()));
        assert!(fields.contains(&"__grad_b".to_string()));
    }

    #[test]
    fn forward_and_backward_are_straight_line() {
        let file = seed();
        for name in ["__forward", "backward", "zero_grad", "visit_parameters"] {
            let body = method(&file, name);
            for keyword in ["for", "while", "loop", "vec", "Vec", "Box"] {
                assert!(
                    !body.split_whitespace().any(|t| t == keyword),
                    "`{keyword}` in {name}"
                );
            }
        }
        let forward = method(&file, "__forward");
        let fc1 = forward.find("& mut self . fc1").unwrap();
        assert!(
            forward[fc1..]
                .starts_with("& mut self . fc1 , & self . __backend , & self . __act_pool1")
        );
    }

    #[test]
    fn backward_runs_in_reverse_and_passes_at_to_the_last_layer_only() {
        let backward = method(&seed(), "backward");
        let order: Vec<usize> = [
            "self . out",
            "self . drop",
            "self . fc1",
            "self . pool1",
            "self . conv1",
        ]
        .iter()
        .map(|l| backward.find(&format!("& mut {l} ,")).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert_eq!(backward.matches("batch , at ,").count(), 1);
        assert_eq!(backward.matches(":: None").count(), 1);
        let conv1 = &backward[order[4]..];
        assert!(conv1.contains(":: None"));
    }

    #[test]
    fn max_pooling_after_a_relu_passes_its_gradient_through_it() {
        // The seed: `conv1` (relu) then `pool1`. The pool takes the ReLU's backward
        // pass over, and `conv1` is told its gradient is at the pre-activation.
        let backward = method(&seed(), "backward");
        let pool1 = backward.find("backward_through_relu").unwrap();
        assert!(backward[pool1..].starts_with("backward_through_relu (& mut self . pool1 ,"));
        let conv1 = backward.find("& mut self . conv1 ,").unwrap();
        assert!(backward[conv1..].contains("GradAt :: PreActivation"));
        assert_eq!(backward.matches("backward_through_relu").count(), 1);
        // Without a ReLU before it, a pool runs its plain backward pass.
        let file = expanded(quote! {
            struct M {
                input: [8, 8, 3],
                conv: Conv2d(filters = 4, kernel = 3, activation = tanh),
                pool: MaxPool2d(2),
                flat: Flatten,
                out: Dense(2),
            }
        });
        let backward = method(&file, "backward");
        assert!(!backward.contains("backward_through_relu"));
        assert!(!backward.contains("PreActivation"));
    }

    #[test]
    fn one_running_layer_needs_one_gradient_buffer() {
        let file = expanded(quote! { struct M { input: [4], flat: Flatten, out: Dense(2) } });
        let syn::Item::Struct(s) = &file.items[0] else {
            panic!()
        };
        assert!(
            !s.fields
                .iter()
                .any(|f| f.ident.as_ref().is_some_and(|i| i == "__grad_b"))
        );
        assert!(method(&file, "backward").contains(":: None"));
    }
}
