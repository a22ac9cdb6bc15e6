//! Stage 3: a checked model and its plan to tokens.
//!
//! The generated struct owns its layers (a public field per layer or block; a block's
//! layers are the fields of a struct of its own, in a hidden module) and a workspace
//! of buffers sized once for `max_batch`, which the plan (`plan.rs`) shares between
//! values whose lives do not overlap. `forward` and `backward` are the plan's
//! statements as straight-line calls, with no loop, tape or allocation.
//!
//! Every path is absolute (`::kiln::...`), so the code does not depend on the user's
//! imports.

use kiln_shape::Shape;
use proc_macro2::{Group, Ident, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote};

use crate::check::{Block, Header, Layer, Model, Node};
use crate::literals::{activation_tokens, lit, marker, rust, shape_tokens};
use crate::plan::{At, Backward, BufferId, Dx, Forward, OpKind, Plan};

mod dataflow;

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

/// The model's struct, its block structs, its inherent impl and its `Trainable` and
/// `Model` impls.
pub fn expand(model: &Model) -> TokenStream {
    let Some(input_marker) = marker(&model.input) else {
        return unsupported(model, &model.input);
    };
    let plan = Plan::new(model);
    let output_shape = plan.graph.values[plan.graph.output];
    let Some(output_marker) = marker(&output_shape) else {
        return unsupported(model, &output_shape);
    };
    let Header { docs, vis, name } = &model.header;
    let label = name.to_string();
    let label = label.strip_prefix("r#").unwrap_or(&label);
    let blocks = BlockTypes::new(model);

    let parameters = lit(model.nodes.iter().map(Node::parameters).sum());
    let input_shape = shape_tokens(&model.input);
    let output_shape_tokens = shape_tokens(&output_shape);
    let layer_table = layer_table(model);
    let graph_table = dataflow::graph_table(&plan.graph);
    let output_activation = match plan.output_activation {
        Some(a) => {
            let a = activation_tokens(&a);
            quote!(::core::option::Option::Some(#a))
        }
        None => quote!(::core::option::Option::None),
    };
    let workspace_floats = lit(plan.floats_per_sample());

    let struct_docs = struct_docs(model, docs.is_empty());
    let module = blocks.module(model, vis);
    let layer_fields = model.nodes.iter().map(|n| blocks.field(n, false));
    let buffer_fields = (0..plan.buffers.len()).map(|b| {
        let f = buffer(b);
        quote! { #f: <B as ::kiln::Storage>::Buffer, }
    });
    let build = build(model, &blocks);
    let alloc = plan.buffers.iter().enumerate().map(|(b, size)| {
        let (f, size) = (buffer(b), lit(*size));
        quote! { #f: ::kiln::Storage::alloc(backend, max_batch * #size)?, }
    });
    let forward = forward(&plan);
    let backward_body = backward(&plan, &plan.backward);
    let to_input_body = backward(&plan, &plan.backward_to_input);
    // The input always reaches the output, so its gradient always has a buffer.
    let input_gradient = buffer(plan.input_gradient.unwrap_or_default());
    let input_buffer = buffer(plan.value_buffer[plan.graph.input]);
    let output_buffer = buffer(plan.value_buffer[plan.graph.output]);
    let input_size = lit(model.input.size());
    let layers = all_layers(model);
    let visit = layers.iter().map(|l| {
        let (field, ty, label) = (access(l), rust(l.kind.runtime), &l.path);
        quote! { <#ty as ::kiln::nn::Layer<B>>::visit_parameters(&mut self.#field, #label, &mut *f)?; }
    });
    let params = layers.iter().map(|l| {
        let (field, ty, label) = (access(l), rust(l.kind.runtime), &l.path);
        quote! { <#ty as ::kiln::nn::Layer<B>>::parameters(&self.#field, #label, &mut *f)?; }
    });
    let visit_state = layers.iter().map(|l| {
        let (field, ty, label) = (access(l), rust(l.kind.runtime), &l.path);
        quote! { <#ty as ::kiln::nn::Layer<B>>::visit_state(&mut self.#field, #label, &mut *f)?; }
    });
    let state = layers.iter().map(|l| {
        let (field, ty, label) = (access(l), rust(l.kind.runtime), &l.path);
        quote! { <#ty as ::kiln::nn::Layer<B>>::state(&self.#field, #label, &mut *f)?; }
    });

    // A batch of the wrong shape is a type error whose "defined here" note points at
    // the model's input shape. Located there, resolved at the call site as the rest.
    let at_input = Span::call_site().located_at(model.input_span);
    let forward_sig = respan(
        quote!(forward(&mut self, x: &::kiln::Tensor<#input_marker, B>, mode: ::kiln::nn::Mode)),
        at_input,
    );
    let result = quote!(::kiln::nn::Result);
    let kresult = quote!(::kiln::kernels::Result);
    let tensor_in = quote!(::kiln::Tensor<#input_marker, B>);
    let tensor_out = quote!(::kiln::Tensor<#output_marker, B>);
    let view_out = quote!(::kiln::TensorRef<'_, #output_marker, B>);
    let visit_params = quote!(::kiln::kernels::VisitParams<'_, 'a, B>);
    let view_params = quote!(::kiln::kernels::ViewParams<'_, 'a, B>);
    let visit_states = quote!(::kiln::kernels::VisitState<'_, 'a, B>);
    let view_states = quote!(::kiln::kernels::ViewState<'_, 'a, B>);

    quote! {
        #module

        #(#docs)*
        #struct_docs
        #vis struct #name<B: ::kiln::Backend = ::kiln::Cpu> {
            #(#layer_fields)*
            __backend: B,
            __max_batch: usize,
            __batch: usize,
            #(#buffer_fields)*
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
            /// Every layer and block: name, kind, per-sample output shape,
            /// parameters, depth.
            pub const LAYERS: &'static [::kiln::nn::LayerInfo] = #layer_table;
            /// The dataflow graph: each layer, residual sum and concatenation with
            /// the values it reads (value 0 the input, `i + 1` node `i`'s output).
            pub const GRAPH: &'static [::kiln::nn::Node] = #graph_table;
            /// The activation of the op that `backward`'s `GradAt` refers to, if any.
            pub const OUTPUT_ACTIVATION: ::core::option::Option<::kiln::shape::Activation> = #output_activation;
            /// Values one sample takes in the workspace planned from the graph.
            pub const WORKSPACE_FLOATS_PER_SAMPLE: usize = #workspace_floats;

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
                if max_batch.checked_mul(Self::WORKSPACE_FLOATS_PER_SAMPLE).is_none() {
                    return ::core::result::Result::Err(::kiln::nn::Error::MaxBatchTooLarge { model: Self::NAME, max_batch });
                }
                let mut __rng = ::kiln::kernels::rng::Rng::new(seed);
                ::core::result::Result::Ok(Self {
                    #build
                    #(#alloc)*
                    __backend: ::core::clone::Clone::clone(backend),
                    __max_batch: max_batch,
                    __batch: 0,
                })
            }

            /// The backend the model lives on.
            pub fn backend(&self) -> &B {
                &self.__backend
            }

            /// The largest batch the workspace holds.
            pub fn max_batch(&self) -> usize {
                self.__max_batch
            }

            /// Binds `loss` to the model's output: its shape, its last activation
            /// (cross-entropy after softmax takes the fused gradient) and its largest
            /// batch.
            pub fn criterion(
                &self,
                loss: ::kiln::losses::Loss,
            ) -> ::kiln::losses::Result<::kiln::losses::Criterion<#output_marker, B>> {
                ::kiln::losses::Criterion::new(loss, &self.__backend, self.__max_batch, Self::OUTPUT_ACTIVATION)
            }

            /// Runs the network on the batch `x`; the output lives in the workspace
            /// until the next forward.
            pub fn #forward_sig -> #result<#view_out> {
                let batch = x.batch();
                self.__check_batch(batch)?;
                ::kiln::Storage::copy(&self.__backend, x.buffer(), &mut self.#input_buffer, batch * #input_size)?;
                self.__forward(batch, mode)?;
                ::core::result::Result::Ok(self.output())
            }

            /// Like `forward`, on host data (samples in row-major order) uploaded
            /// straight into the workspace.
            pub fn forward_host(&mut self, x: &[f32], mode: ::kiln::nn::Mode) -> #result<#view_out> {
                if !x.len().is_multiple_of(#input_size) {
                    return ::core::result::Result::Err(::kiln::nn::Error::InputLength {
                        model: Self::NAME,
                        len: x.len(),
                        sample: Self::INPUT_SHAPE,
                    });
                }
                let batch = x.len() / #input_size;
                self.__check_batch(batch)?;
                ::kiln::Storage::upload(&self.__backend, x, &mut self.#input_buffer)?;
                self.__forward(batch, mode)?;
                ::core::result::Result::Ok(self.output())
            }

            /// The last forward's output.
            pub fn output(&self) -> #view_out {
                ::kiln::TensorRef::new(&self.#output_buffer, self.__batch)
            }

            /// Back-propagates `grad` (at the output, or at the last op's
            /// pre-activation) through the last forward, accumulating every
            /// parameter's gradient.
            pub fn backward(&mut self, grad: &#tensor_out, at: ::kiln::kernels::GradAt) -> #result<()> {
                let batch = self.__backward_batch(grad.batch())?;
                #backward_body
                ::core::result::Result::Ok(())
            }

            /// Like `backward`, and also writes the gradient with respect to the
            /// model's input into `dx` (a saliency map, an adversarial step).
            pub fn backward_to_input(
                &mut self,
                grad: &#tensor_out,
                at: ::kiln::kernels::GradAt,
                dx: &mut #tensor_in,
            ) -> #result<()> {
                let batch = self.__backward_batch(grad.batch())?;
                dx.set_batch(&self.__backend, batch)?;
                #to_input_body
                ::kiln::Storage::copy(&self.__backend, &self.#input_gradient, dx.buffer_mut(), batch * #input_size)?;
                ::core::result::Result::Ok(())
            }

            /// The batch of the last forward, which `grad` must have.
            fn __backward_batch(&self, grad: usize) -> #result<usize> {
                let batch = self.__batch;
                if batch == 0 {
                    return ::core::result::Result::Err(::kiln::nn::Error::BackwardBeforeForward { model: Self::NAME });
                }
                if grad != batch {
                    return ::core::result::Result::Err(::kiln::nn::Error::BatchMismatch {
                        model: Self::NAME,
                        forward: batch,
                        backward: grad,
                    });
                }
                ::core::result::Result::Ok(batch)
            }

            /// Sets every parameter gradient to zero (a GPU zeroes up to sixteen
            /// tensors in one launch).
            pub fn zero_grad(&mut self) -> #result<()> {
                ::core::result::Result::Ok(::kiln::kernels::Trainable::zero_grad(self)?)
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

        impl<B: ::kiln::Backend> ::kiln::kernels::Trainable<B> for #name<B> {
            fn backend(&self) -> &B {
                &self.__backend
            }

            fn parameters<'a>(&'a self, f: #view_params) -> #kresult<()> {
                #(#params)*
                ::core::result::Result::Ok(())
            }

            fn visit_parameters<'a>(&'a mut self, f: #visit_params) -> #kresult<()> {
                #(#visit)*
                ::core::result::Result::Ok(())
            }

            fn state<'a>(&'a self, f: #view_states) -> #kresult<()> {
                #(#state)*
                ::core::result::Result::Ok(())
            }

            fn visit_state<'a>(&'a mut self, f: #visit_states) -> #kresult<()> {
                #(#visit_state)*
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
            const GRAPH: &'static [::kiln::nn::Node] = #name::<B>::GRAPH;
            const OUTPUT_ACTIVATION: ::core::option::Option<::kiln::shape::Activation> =
                #name::<B>::OUTPUT_ACTIVATION;
            const WORKSPACE_FLOATS_PER_SAMPLE: usize = #name::<B>::WORKSPACE_FLOATS_PER_SAMPLE;

            fn new(backend: &B, max_batch: usize, seed: u64) -> #result<Self> {
                #name::<B>::new(backend, max_batch, seed)
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
            fn backward(&mut self, grad: &#tensor_out, at: ::kiln::kernels::GradAt) -> #result<()> {
                #name::<B>::backward(self, grad, at)
            }
            fn backward_to_input(
                &mut self,
                grad: &#tensor_out,
                at: ::kiln::kernels::GradAt,
                dx: &mut #tensor_in,
            ) -> #result<()> {
                #name::<B>::backward_to_input(self, grad, at, dx)
            }
        }
    }
}

/// The field of workspace buffer `b`.
fn buffer(b: BufferId) -> Ident {
    format_ident!("__w{}", b)
}

/// `res2.shortcut` as the field path `res2 . shortcut`.
fn access(layer: &Layer) -> TokenStream {
    let fields = &layer.access;
    quote!(#(#fields).*)
}

/// Every layer, depth first, in the order written: the order of `new`'s generator
/// streams and of the parameter visits.
fn all_layers(model: &Model) -> Vec<&Layer> {
    fn walk<'m>(node: &'m Node, out: &mut Vec<&'m Layer>) {
        match node {
            Node::Layer(l) => out.push(l),
            Node::Block(b) => {
                for child in b.children() {
                    walk(child, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    for node in &model.nodes {
        walk(node, &mut out);
    }
    out
}

/// The structs that hold the layers of each block, in a hidden module of their own.
struct BlockTypes {
    /// `__kiln_SmallResNet`.
    module: Ident,
}

impl BlockTypes {
    fn new(model: &Model) -> BlockTypes {
        let name = model.header.name.to_string();
        BlockTypes {
            module: format_ident!("__kiln_{}", name.strip_prefix("r#").unwrap_or(&name)),
        }
    }

    /// A block's struct name: its path, `res2.shortcut` as `Block_res2__shortcut`
    /// (layer names may not hold `__`, so no two paths give one name, and the prefix
    /// keeps a block named like a keyword, `r#type`, a valid name).
    fn type_name(block: &Block) -> Ident {
        format_ident!("Block_{}", block.path.replace('.', "__"))
    }

    /// A block's type, as the model names it, or (`inside`) another block.
    fn block_type(&self, block: &Block, inside: bool) -> TokenStream {
        let (module, ty) = (&self.module, Self::type_name(block));
        if inside {
            quote!(#ty<B>)
        } else {
            quote!(#module::#ty<B>)
        }
    }

    /// The field holding `node`, with its docs, in the model's struct or (`inside`) a
    /// block's.
    fn field(&self, node: &Node, inside: bool) -> TokenStream {
        let (name, ty, doc) = match node {
            Node::Layer(l) => (
                &l.name,
                rust(l.kind.runtime),
                format!(
                    " `{}: {}`: output `{}`, {} parameters.",
                    l.path, l.source, l.output, l.parameters
                ),
            ),
            Node::Block(b) => (
                &b.name,
                self.block_type(b, inside),
                format!(
                    " `{}: {}`: output `{}`, {} parameters.",
                    b.path,
                    b.kind.name(),
                    b.output,
                    b.parameters
                ),
            ),
        };
        quote! {
            #[doc = #doc]
            pub #name: #ty,
        }
    }

    /// The module of block structs, or nothing when the model has no block.
    fn module(&self, model: &Model, vis: &syn::Visibility) -> TokenStream {
        let mut blocks = Vec::new();
        fn collect<'m>(node: &'m Node, out: &mut Vec<&'m Block>) {
            if let Node::Block(b) = node {
                out.push(b);
                for child in b.children() {
                    collect(child, out);
                }
            }
        }
        for node in &model.nodes {
            collect(node, &mut blocks);
        }
        if blocks.is_empty() {
            return TokenStream::new();
        }
        let structs = blocks.iter().map(|b| {
            let ty = Self::type_name(b);
            let doc = format!(" The layers of `{}` ({}).", b.path, b.kind.name());
            let fields = b.children().into_iter().map(|n| self.field(n, true));
            quote! {
                #[doc = #doc]
                pub struct #ty<B: ::kiln::Backend> {
                    #(#fields)*
                    #[doc(hidden)]
                    pub __backend: ::core::marker::PhantomData<B>,
                }
            }
        });
        let module = &self.module;
        let doc = format!(" The blocks of `{}`.", model.header.name);
        // Every path inside is absolute, or a sibling's name: the module may sit in a
        // function's body, whose items `super` does not see.
        quote! {
            #[doc = #doc]
            #[doc(hidden)]
            #[allow(non_snake_case, non_camel_case_types)]
            #vis mod #module {
                #(#structs)*
            }
        }
    }
}

/// The layer and block field initialisers of `new`. Struct fields are evaluated in
/// the order written, so layer `i` (depth first) gets the `i`-th fork of the seed's
/// generator.
fn build(model: &Model, blocks: &BlockTypes) -> TokenStream {
    fn node(n: &Node, blocks: &BlockTypes, stream: &mut u64) -> TokenStream {
        match n {
            Node::Layer(l) => {
                let (name, ty) = (&l.name, rust(l.kind.runtime));
                let spec = rust(&l.spec.rust());
                let input = shape_tokens(&l.input);
                let s = Literal::u64_suffixed(*stream);
                let path = &l.path;
                *stream += 1;
                quote! {
                    #name: <#ty as ::kiln::nn::Layer<B>>::build(
                        backend, &#spec, #input, max_batch, &mut __rng.fork(#s),
                    )
                    .map_err(|e| ::kiln::nn::Error::Build {
                        model: Self::NAME,
                        layer: #path,
                        source: ::std::boxed::Box::new(e),
                    })?,
                }
            }
            Node::Block(b) => {
                let name = &b.name;
                let (module, ty) = (&blocks.module, BlockTypes::type_name(b));
                let fields: Vec<TokenStream> = b
                    .children()
                    .into_iter()
                    .map(|c| node(c, blocks, stream))
                    .collect();
                quote! {
                    #name: #module::#ty { #(#fields)* __backend: ::core::marker::PhantomData },
                }
            }
        }
    }
    let mut stream = 0;
    let fields = model.nodes.iter().map(|n| node(n, blocks, &mut stream));
    quote! { #(#fields)* }
}

/// `self.__wN` as a shared or mutable borrow.
fn read(b: BufferId) -> TokenStream {
    let f = buffer(b);
    quote!(&self.#f)
}

fn write(b: BufferId) -> TokenStream {
    let f = buffer(b);
    quote!(&mut self.#f)
}

/// The layer of op `op`.
fn op_layer<'m>(plan: &Plan<'m>, op: usize) -> Option<&'m Layer> {
    match plan.graph.ops[op].kind {
        OpKind::Layer(l) => Some(l),
        _ => None,
    }
}

/// `(rows, cols)` of a value: cols its last axis, rows the rest (per sample).
fn rows_cols(shape: &Shape) -> (usize, usize) {
    let cols = shape.dims().last().copied().unwrap_or(1).max(1);
    (shape.size() / cols, cols)
}

fn forward(plan: &Plan) -> TokenStream {
    let backend = quote!(&self.__backend);
    let calls = plan.forward.iter().map(|stmt| match *stmt {
        Forward::Layer { op, x, y } => {
            let Some(l) = op_layer(plan, op) else {
                return TokenStream::new();
            };
            let (field, ty) = (access(l), rust(l.kind.runtime));
            let (x, y) = (read(x), write(y));
            quote! {
                <#ty as ::kiln::nn::Layer<B>>::forward(&mut self.#field, #backend, #x, #y, batch, mode)?;
            }
        }
        Forward::Add { op, a, b, y } => {
            let o = &plan.graph.ops[op];
            let OpKind::Add { activation } = o.kind else {
                return TokenStream::new();
            };
            let act = activation_tokens(&activation);
            let len = lit(plan.graph.values[o.output].size());
            if b == y {
                let (a, y) = (read(a), write(y));
                quote! { ::kiln::nn::graph::add_inplace(#backend, #act, batch * #len, #a, #y)?; }
            } else {
                let (a, b, y) = (read(a), read(b), write(y));
                quote! { ::kiln::nn::graph::add(#backend, #act, batch * #len, #a, #b, #y)?; }
            }
        }
        Forward::Concat { op, input, x, y } => {
            let geometry = concat_geometry(plan, op, input);
            let (x, y) = (read(x), write(y));
            quote! { ::kiln::nn::graph::concat(#backend, #geometry, #x, #y)?; }
        }
    });
    quote! { #(#calls)* }
}

/// `(batch * rows, width, total, offset)` of input `input` of concatenation `op`.
fn concat_geometry(plan: &Plan, op: usize, input: usize) -> TokenStream {
    let o = &plan.graph.ops[op];
    let (rows, total) = rows_cols(&plan.graph.values[o.output]);
    let widths: Vec<usize> = o
        .inputs
        .iter()
        .map(|&v| rows_cols(&plan.graph.values[v]).1)
        .collect();
    let offset: usize = widths[..input].iter().sum();
    let (rows, width, total, offset) = (lit(rows), lit(widths[input]), lit(total), lit(offset));
    quote!((batch * #rows, #width, #total, #offset))
}

fn at_tokens(at: At) -> TokenStream {
    match at {
        At::Caller => quote!(at),
        At::Output => quote!(::kiln::kernels::GradAt::Output),
        At::PreActivation => quote!(::kiln::kernels::GradAt::PreActivation),
    }
}

/// `Option<InputGrad>` for a layer's backward pass.
fn dx_tokens(dx: Dx) -> TokenStream {
    match input_grad(dx) {
        Some(g) => quote!(::core::option::Option::Some(#g)),
        None => quote!(::core::option::Option::None),
    }
}

/// The `InputGrad` of `dx`, unless there is none.
fn input_grad(dx: Dx) -> Option<TokenStream> {
    let grad = quote!(::kiln::kernels::ops::InputGrad);
    match dx {
        Dx::None => None,
        Dx::Write(b) => {
            let b = write(b);
            Some(quote!(#grad::write(#b)))
        }
        Dx::Add(b) => {
            let b = write(b);
            Some(quote!(#grad::add_to(#b)))
        }
    }
}

fn backward(plan: &Plan, stmts: &[Backward]) -> TokenStream {
    let backend = quote!(&self.__backend);
    let output_size = lit(plan.graph.values[plan.graph.output].size());
    let optional = |b: Option<BufferId>| match b {
        Some(b) => {
            let b = read(b);
            quote!(::core::option::Option::Some(#b))
        }
        None => quote!(::core::option::Option::None),
    };
    let mut uses_at = false;
    let calls: Vec<TokenStream> = stmts
        .iter()
        .map(|stmt| match *stmt {
            Backward::Seed { dy } => {
                let dy = write(dy);
                quote! { ::kiln::Storage::copy(#backend, grad.buffer(), #dy, batch * #output_size)?; }
            }
            Backward::Layer {
                op,
                x,
                y,
                dy,
                dx,
                at,
                through_relu,
            } => {
                let Some(l) = op_layer(plan, op) else {
                    return TokenStream::new();
                };
                uses_at |= at == At::Caller;
                let (field, ty) = (access(l), rust(l.kind.runtime));
                let (x, y, dy, dx, at) = (optional(x), optional(y), write(dy), dx_tokens(dx), at_tokens(at));
                quote! {
                    <#ty as ::kiln::nn::Layer<B>>::backward(&mut self.#field, #backend, ::kiln::nn::Backward {
                        x: #x,
                        y: #y,
                        dy: #dy,
                        dx: #dx,
                        batch,
                        at: #at,
                        through_relu_below: #through_relu,
                    })?;
                }
            }
            Backward::AddActivation { op, y, dy, at } => {
                let o = &plan.graph.ops[op];
                let OpKind::Add { activation } = o.kind else {
                    return TokenStream::new();
                };
                uses_at |= at == At::Caller;
                let act = activation_tokens(&activation);
                let (rows, cols) = rows_cols(&plan.graph.values[o.output]);
                let (rows, cols) = (lit(rows), lit(cols));
                let (y, dy, at) = (read(y), write(dy), at_tokens(at));
                quote! {
                    ::kiln::nn::graph::add_backward(#backend, #act, batch * #rows, #cols, #y, #dy, #at)?;
                }
            }
            Backward::Concat { op, input, dy, dx } => {
                let Some(dx) = input_grad(dx) else {
                    return TokenStream::new();
                };
                let geometry = concat_geometry(plan, op, input);
                let dy = read(dy);
                quote! { ::kiln::nn::graph::concat_backward(#backend, #geometry, #dy, #dx)?; }
            }
            Backward::AddGradient { len, src, dst } => {
                let (len, src, dst) = (lit(len), read(src), write(dst));
                quote! { ::kiln::nn::graph::add_gradient(#backend, batch * #len, #src, #dst)?; }
            }
            Backward::Copy { len, src, dst } => {
                let (len, src, dst) = (lit(len), read(src), write(dst));
                quote! { ::kiln::nn::graph::copy(#backend, batch * #len, #src, #dst)?; }
            }
        })
        .collect();
    // The op that would take it has no activation to skip, or nothing runs.
    let unused = (!uses_at).then(|| quote! { let _ = at; });
    quote! { #unused #(#calls)* }
}

/// The `LAYERS` table: every layer and block, depth first.
fn layer_table(model: &Model) -> TokenStream {
    fn rows(node: &Node, depth: usize, out: &mut Vec<TokenStream>) {
        let (name, kind, shape) = match node {
            Node::Layer(l) => (&l.path, l.kind.name, l.output),
            Node::Block(b) => (&b.path, b.kind.name(), b.output),
        };
        let (parameters, state) = (lit(node.parameters()), lit(node.state()));
        let (shape, d) = (shape_tokens(&shape), lit(depth));
        out.push(quote! {
            ::kiln::nn::LayerInfo {
                name: #name,
                kind: #kind,
                output_shape: #shape,
                parameters: #parameters,
                state: #state,
                depth: #d,
            }
        });
        if let Node::Block(b) = node {
            for child in b.children() {
                rows(child, depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    for node in &model.nodes {
        rows(node, 0, &mut out);
    }
    quote!(&[#(#out),*])
}

/// The user's docs are kept; a line on the model follows them (or stands alone).
fn struct_docs(model: &Model, alone: bool) -> TokenStream {
    let parameters: usize = model.nodes.iter().map(Node::parameters).sum();
    let mut text = format!(
        " A network declared with `kiln::model!`: input `{}`, {parameters} parameters.",
        model.input,
    );
    if !alone {
        text.insert(0, '\n');
    }
    fn lines(node: &Node, depth: usize, out: &mut Vec<String>) {
        let indent = "  ".repeat(depth);
        match node {
            Node::Layer(l) => out.push(format!(
                " {indent}- `{}: {}` -> `{}`",
                l.path, l.source, l.output
            )),
            Node::Block(b) => {
                out.push(format!(
                    " {indent}- `{}: {}` -> `{}`",
                    b.path,
                    b.kind.name(),
                    b.output
                ));
                for child in b.children() {
                    lines(child, depth + 1, out);
                }
            }
        }
    }
    let mut layers = Vec::new();
    for node in &model.nodes {
        lines(node, 0, &mut layers);
    }
    quote! {
        #[doc = #text]
        #[doc = ""]
        #(#[doc = #layers])*
    }
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
mod tests;
