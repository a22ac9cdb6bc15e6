//! The `GRAPH` constant: the plan's graph as data (`::kiln::nn::Node`s), for tools
//! that walk the network the generated code runs, such as the ONNX exporter.

use proc_macro2::TokenStream;
use quote::quote;

use crate::literals::{activation_tokens, lit, rust};
use crate::plan::{Graph, OpKind};

/// `&[::kiln::nn::Node { .. }, ..]`, one node an op, in forward order. Value 0 is the
/// input and op `i` writes value `i + 1`, as the graph numbers them.
pub fn graph_table(graph: &Graph) -> TokenStream {
    let nodes = graph.ops.iter().map(|op| {
        let name = op.name;
        let node_op = match &op.kind {
            OpKind::Layer(l) => {
                let spec = rust(&l.spec.rust());
                quote!(::kiln::nn::NodeOp::Layer(&#spec))
            }
            OpKind::Add { activation } => {
                let activation = activation_tokens(activation);
                quote!(::kiln::nn::NodeOp::Add { activation: #activation })
            }
            OpKind::Concat => quote!(::kiln::nn::NodeOp::Concat),
        };
        let inputs = op.inputs.iter().map(|v| lit(*v));
        quote! {
            ::kiln::nn::Node { name: #name, op: #node_op, inputs: &[#(#inputs),*] }
        }
    });
    quote!(&[#(#nodes),*])
}
