//! A model's dataflow graph as data: the ops that `model!` lowers a model to, each
//! with its name, what it computes and which values it reads.
//!
//! The macro emits it as the constant `GRAPH` of every model, so that tools which need
//! the network's structure (the ONNX exporter) walk the graph that the generated code
//! runs, rather than guess it from names. Values are numbered: value 0 is the model's
//! input, value `i + 1` the output of node `i`; nodes come in the order the forward
//! pass runs them, and the last node's output is the model's output.

use kiln_shape::{Activation, Shape, Spec};

/// What a node of the graph computes.
#[derive(Clone, Copy, Debug)]
pub enum NodeOp {
    /// A layer, by its spec (`Conv2dSpec`, `Activation`, ...).
    Layer(&'static dyn Spec),
    /// A residual block's sum, `activation(inputs[0] + inputs[1])`: the shortcut's
    /// value, then the branch's.
    Add {
        /// Applied to the sum.
        activation: Activation,
    },
    /// The inputs concatenated along the last axis.
    Concat,
}

/// One node of a model's graph.
#[derive(Clone, Copy, Debug)]
pub struct Node {
    /// The layer's name in the model (`res2.shortcut`), or for a sum or a
    /// concatenation its block's (`res2`).
    pub name: &'static str,
    /// What it computes.
    pub op: NodeOp,
    /// The values it reads (0 is the model's input, `i + 1` node `i`'s output).
    pub inputs: &'static [usize],
}

/// The per-sample shape of every value of `graph` on an input of shape `input`
/// (value 0 is the input), by the rules the layers run; `Err` names the node whose
/// rule refused its input.
pub fn value_shapes(input: Shape, graph: &[Node]) -> Result<Vec<Shape>, &'static str> {
    let mut shapes = vec![input];
    for node in graph {
        let of = |k: usize| {
            let v = *node.inputs.get(k).ok_or(node.name)?;
            shapes.get(v).copied().ok_or(node.name)
        };
        let shape = match node.op {
            NodeOp::Layer(spec) => spec.output_for(&of(0)?).ok(),
            NodeOp::Add { .. } => Some(of(1)?),
            NodeOp::Concat => {
                let mut dims = of(0)?.dims().to_vec();
                let mut last = 0;
                for k in 0..node.inputs.len() {
                    last += of(k)?.dims().last().copied().unwrap_or(0);
                }
                match dims.last_mut() {
                    Some(d) => {
                        *d = last;
                        Some(Shape::new(&dims))
                    }
                    None => None,
                }
            }
        };
        shapes.push(shape.ok_or(node.name)?);
    }
    Ok(shapes)
}
