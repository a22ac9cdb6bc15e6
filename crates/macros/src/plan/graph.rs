//! The graph of a checked model: its values (one sample's tensor each) and the ops
//! between them, in the order the forward pass runs them.

use kiln_shape::{Activation, Shape, Traits};

use crate::blocks::BlockKind;
use crate::check::{Layer, Model, Node};

/// A value of the graph.
pub type ValueId = usize;

/// What an op computes.
pub enum OpKind<'m> {
    /// A layer of the model.
    Layer(&'m Layer),
    /// A residual block's sum, `activation(inputs[0] + inputs[1])`: the shortcut's
    /// value, then the branch's.
    Add {
        /// Applied to the sum.
        activation: Activation,
    },
    /// A concatenation of the inputs along the last axis.
    Concat,
}

/// An op of the graph.
pub struct Op<'m> {
    /// The layer's path, or for a sum or a concatenation its block's.
    pub name: &'m str,
    /// What it computes.
    pub kind: OpKind<'m>,
    /// The values it reads.
    pub inputs: Vec<ValueId>,
    /// The value it writes.
    pub output: ValueId,
}

impl Op<'_> {
    /// The layer's traits, or a graph op's.
    pub(super) fn traits(&self) -> Traits {
        match &self.kind {
            OpKind::Layer(l) => l.spec.traits(),
            OpKind::Add { activation } => Traits {
                reads_output: *activation != Activation::Linear,
                overwrites_output_grad: *activation != Activation::Linear,
                ..Traits::default()
            },
            OpKind::Concat => Traits::default(),
        }
    }

    /// The activation at its output.
    pub(super) fn activation(&self) -> Activation {
        match &self.kind {
            OpKind::Layer(l) => l.spec.activation(),
            OpKind::Add { activation } => *activation,
            OpKind::Concat => Activation::Linear,
        }
    }

    pub(super) fn is_alias(&self) -> bool {
        self.traits().alias
    }
}

/// The graph of a model: values and the ops between them.
pub struct Graph<'m> {
    /// Each value's per-sample shape.
    pub values: Vec<Shape>,
    /// The ops, in the order the forward pass runs them.
    pub ops: Vec<Op<'m>>,
    /// The model's input.
    pub input: ValueId,
    /// The model's output.
    pub output: ValueId,
}

impl<'m> Graph<'m> {
    /// Lowers the model's tree of layers and blocks.
    pub fn of(model: &'m Model) -> Graph<'m> {
        let mut graph = Graph {
            values: vec![model.input],
            ops: Vec::new(),
            input: 0,
            output: 0,
        };
        graph.output = graph.chain(&model.nodes, 0);
        graph
    }

    fn value(&mut self, shape: Shape) -> ValueId {
        self.values.push(shape);
        self.values.len() - 1
    }

    fn op(
        &mut self,
        name: &'m str,
        kind: OpKind<'m>,
        inputs: Vec<ValueId>,
        shape: Shape,
    ) -> ValueId {
        let output = self.value(shape);
        self.ops.push(Op {
            name,
            kind,
            inputs,
            output,
        });
        output
    }

    fn chain(&mut self, nodes: &'m [Node], mut value: ValueId) -> ValueId {
        for node in nodes {
            value = self.node(node, value);
        }
        value
    }

    fn node(&mut self, node: &'m Node, input: ValueId) -> ValueId {
        match node {
            Node::Layer(layer) => {
                self.op(&layer.path, OpKind::Layer(layer), vec![input], layer.output)
            }
            Node::Block(block) => match block.kind {
                BlockKind::Sequential => self.chain(&block.body, input),
                BlockKind::Residual => {
                    let (shortcut, branch) = if block.shortcut_first {
                        let s = self.shortcut(block.shortcut.as_deref(), input);
                        (s, self.chain(&block.body, input))
                    } else {
                        let b = self.chain(&block.body, input);
                        (self.shortcut(block.shortcut.as_deref(), input), b)
                    };
                    let kind = OpKind::Add {
                        activation: block.activation,
                    };
                    self.op(&block.path, kind, vec![shortcut, branch], block.output)
                }
                BlockKind::Concat => {
                    let branches = block.body.iter().map(|n| self.node(n, input)).collect();
                    self.op(&block.path, OpKind::Concat, branches, block.output)
                }
            },
        }
    }

    fn shortcut(&mut self, shortcut: Option<&'m Node>, input: ValueId) -> ValueId {
        shortcut.map_or(input, |n| self.node(n, input))
    }

    /// The ops reading each value, in forward order.
    pub(super) fn consumers(&self) -> Vec<Vec<usize>> {
        let mut consumers = vec![Vec::new(); self.values.len()];
        for (i, op) in self.ops.iter().enumerate() {
            for &v in &op.inputs {
                consumers[v].push(i);
            }
        }
        consumers
    }

    /// Whether each value's gradient is needed: downstream of a parameter, or with
    /// `input`, downstream of the model's input.
    pub(super) fn needs_gradient(&self, input: bool) -> Vec<bool> {
        let mut needs = vec![false; self.values.len()];
        needs[self.input] = input;
        for op in &self.ops {
            let params = matches!(op.kind, OpKind::Layer(l) if l.parameters > 0);
            needs[op.output] = params || op.inputs.iter().any(|&v| needs[v]);
        }
        needs
    }

    pub(super) fn producer(&self) -> Vec<Option<usize>> {
        let mut producer = vec![None; self.values.len()];
        for (i, op) in self.ops.iter().enumerate() {
            producer[op.output] = Some(i);
        }
        producer
    }
}
