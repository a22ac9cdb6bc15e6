//! The dataflow plan of a checked model: its graph of values and ops, the backward
//! schedule, and the workspace buffer each value and gradient lives in.
//!
//! The model's tree of layers and blocks is lowered to a graph: values (one sample's
//! tensor each) and ops in declaration order: a layer, the sum of a residual block,
//! a concatenation. Everything here happens while the user's crate compiles; the
//! generated code is straight-line calls on the buffers chosen here.
//!
//! - **Forward**: each op reads its inputs' buffers and writes its output's. `Flatten`
//!   and `Identity` (layers whose traits say `alias`) give their output the input's
//!   buffer and never run. A residual sum writes over its branch's output when
//!   nothing reads that output again.
//! - **Backward**: ops in reverse. A value's gradient is the sum of its consumers'
//!   contributions: the first one to run writes it, a later one adds to it (natively
//!   when the layer's traits say it can, else through a scratch buffer and a sum).
//!   The sum of a residual block passes its output's gradient to both inputs by
//!   lending the same buffer (as do alias layers), so an identity shortcut costs no
//!   pass; where one of the values sharing a buffer is about to change it while
//!   another still needs it, the plan copies instead.
//! - **Fusions**: a layer whose traits say it absorbs a ReLU below (max pooling) takes
//!   over the backward of the ReLU that produced its input, when it is that value's
//!   only consumer; the producer then gets its gradient at the pre-activation.
//! - **Buffers**: every value and gradient lives from the step that writes it to the
//!   last step that reads it (a forward value read by the backward pass lives until
//!   then). Lifetimes that do not overlap share a buffer, best fit first; a buffer is
//!   as large as the largest tensor it holds.

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
    /// What it computes.
    pub kind: OpKind<'m>,
    /// The values it reads.
    pub inputs: Vec<ValueId>,
    /// The value it writes.
    pub output: ValueId,
}

impl Op<'_> {
    /// The layer's traits, or a graph op's.
    fn traits(&self) -> Traits {
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
    fn activation(&self) -> Activation {
        match &self.kind {
            OpKind::Layer(l) => l.spec.activation(),
            OpKind::Add { activation } => *activation,
            OpKind::Concat => Activation::Linear,
        }
    }

    fn is_alias(&self) -> bool {
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

    fn op(&mut self, kind: OpKind<'m>, inputs: Vec<ValueId>, shape: Shape) -> ValueId {
        let output = self.value(shape);
        self.ops.push(Op {
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
            Node::Layer(layer) => self.op(OpKind::Layer(layer), vec![input], layer.output),
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
                    self.op(kind, vec![shortcut, branch], block.output)
                }
                BlockKind::Concat => {
                    let branches = block.body.iter().map(|n| self.node(n, input)).collect();
                    self.op(OpKind::Concat, branches, block.output)
                }
            },
        }
    }

    fn shortcut(&mut self, shortcut: Option<&'m Node>, input: ValueId) -> ValueId {
        shortcut.map_or(input, |n| self.node(n, input))
    }

    /// The ops reading each value, in forward order.
    fn consumers(&self) -> Vec<Vec<usize>> {
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
    fn needs_gradient(&self, input: bool) -> Vec<bool> {
        let mut needs = vec![false; self.values.len()];
        needs[self.input] = input;
        for op in &self.ops {
            let params = matches!(op.kind, OpKind::Layer(l) if l.parameters > 0);
            needs[op.output] = params || op.inputs.iter().any(|&v| needs[v]);
        }
        needs
    }

    fn producer(&self) -> Vec<Option<usize>> {
        let mut producer = vec![None; self.values.len()];
        for (i, op) in self.ops.iter().enumerate() {
            producer[op.output] = Some(i);
        }
        producer
    }
}

/// A workspace buffer.
pub type BufferId = usize;

/// Where a layer's backward pass puts an input's gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dx {
    /// Nothing before the layer needs it.
    None,
    /// Written over the buffer.
    Write(BufferId),
    /// Added to what the buffer holds.
    Add(BufferId),
}

/// Where the gradient a backward pass receives stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// The caller's `at`, passed on: the op that produces the model's output.
    Caller,
    /// At the output.
    Output,
    /// At the pre-activation: the consumer took the activation's backward over.
    PreActivation,
}

/// One statement of the forward pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forward {
    /// `ops[op]`, a layer, reading `x` and writing `y`.
    Layer {
        /// The op.
        op: usize,
        /// The input's buffer.
        x: BufferId,
        /// The output's buffer.
        y: BufferId,
    },
    /// `y = act(a + b)`.
    Add {
        /// The op.
        op: usize,
        /// The shortcut's buffer.
        a: BufferId,
        /// The branch's buffer.
        b: BufferId,
        /// The output's buffer: `b` when the sum is written over the branch.
        y: BufferId,
    },
    /// One input's part of a concatenation.
    Concat {
        /// The op.
        op: usize,
        /// Which input.
        input: usize,
        /// Its buffer.
        x: BufferId,
        /// The concatenation's buffer.
        y: BufferId,
    },
}

/// One statement of the backward pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backward {
    /// The caller's gradient copied into the output's gradient buffer.
    Seed {
        /// The buffer.
        dy: BufferId,
    },
    /// A layer's backward pass.
    Layer {
        /// The op.
        op: usize,
        /// The forward's input, when the layer reads it.
        x: Option<BufferId>,
        /// The forward's output, when the layer reads it.
        y: Option<BufferId>,
        /// The output's gradient.
        dy: BufferId,
        /// The input's gradient.
        dx: Dx,
        /// Where `dy` stands.
        at: At,
        /// The layer passes the input gradient through the ReLU below too.
        through_relu: bool,
    },
    /// A residual sum's activation, backward, in place on its output's gradient.
    AddActivation {
        /// The op.
        op: usize,
        /// The sum's output.
        y: BufferId,
        /// Its gradient.
        dy: BufferId,
        /// Where `dy` stands.
        at: At,
    },
    /// One input's gradient of a concatenation.
    Concat {
        /// The op.
        op: usize,
        /// Which input.
        input: usize,
        /// The concatenation's gradient.
        dy: BufferId,
        /// The input's gradient.
        dx: Dx,
    },
    /// `dst += src`, `len` values a sample.
    AddGradient {
        /// Values a sample.
        len: usize,
        /// Added.
        src: BufferId,
        /// Added to.
        dst: BufferId,
    },
    /// `dst = src`, `len` values a sample.
    Copy {
        /// Values a sample.
        len: usize,
        /// Copied.
        src: BufferId,
        /// Written.
        dst: BufferId,
    },
}

/// The plan: statements and buffers.
pub struct Plan<'m> {
    /// The graph.
    pub graph: Graph<'m>,
    /// The forward pass.
    pub forward: Vec<Forward>,
    /// The backward pass.
    pub backward: Vec<Backward>,
    /// The backward pass that also computes the input's gradient.
    pub backward_to_input: Vec<Backward>,
    /// Where the input's gradient is, after `backward_to_input`.
    pub input_gradient: Option<BufferId>,
    /// Each buffer's size, in values a sample.
    pub buffers: Vec<usize>,
    /// The buffer of each value.
    pub value_buffer: Vec<BufferId>,
    /// The activation of the op that produces the output (through alias layers), if
    /// that op takes the caller's `at`.
    pub output_activation: Option<Activation>,
}

/// A tensor the plan places: a forward value's storage (shared by alias layers and a
/// sum written over its branch) or a gradient's.
#[derive(Clone, Debug, Default)]
struct Storage {
    /// Values a sample.
    size: usize,
    /// First and last step that touch it.
    first: Option<usize>,
    last: usize,
}

impl Storage {
    fn touch(&mut self, step: usize) {
        self.first = Some(self.first.map_or(step, |f| f.min(step)));
        self.last = self.last.max(step);
    }
}

/// A statement of the backward pass on storages, before buffers are chosen.
#[derive(Clone, Debug)]
enum Stmt {
    Seed {
        dy: usize,
    },
    Layer {
        op: usize,
        dy: usize,
        dx: Option<(usize, bool)>,
        at: At,
        through_relu: bool,
    },
    AddActivation {
        op: usize,
        dy: usize,
        at: At,
    },
    Concat {
        op: usize,
        input: usize,
        dy: usize,
        dx: (usize, bool),
    },
    AddGradient {
        value: ValueId,
        src: usize,
        dst: usize,
    },
    Copy {
        value: ValueId,
        src: usize,
        dst: usize,
    },
}

/// What a backward statement does to a gradient: read it, or change it in place.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Touch {
    Read,
    Change,
}

impl<'m> Plan<'m> {
    /// Plans `model`.
    pub fn new(model: &'m Model) -> Plan<'m> {
        let graph = Graph::of(model);
        let n = graph.ops.len();
        let consumers = graph.consumers();
        let producer = graph.producer();

        // Whose gradient is needed: a value downstream of a parameter, and for
        // `backward_to_input` the input and everything downstream of it.
        let needs = graph.needs_gradient(false);
        let needs_to_input = graph.needs_gradient(true);

        // Where each op's backward gets its gradient, and the ReLUs taken over.
        let mut at = vec![At::Output; n];
        let mut through_relu = vec![false; n];
        for (c, op) in graph.ops.iter().enumerate() {
            let &[u] = op.inputs.as_slice() else { continue };
            let Some(p) = producer[u] else { continue };
            let producer_op = &graph.ops[p];
            if op.traits().absorbs_relu_below
                && !op.is_alias()
                && !producer_op.is_alias()
                && producer_op.activation() == Activation::Relu
                && consumers[u] == [c]
            {
                through_relu[c] = true;
                at[p] = At::PreActivation;
            }
        }
        // The op producing the output, through alias layers, takes the caller's `at`.
        let mut output_activation = None;
        let mut v = graph.output;
        while let Some(p) = producer[v] {
            let op = &graph.ops[p];
            if op.is_alias() && consumers[op.inputs[0]].len() == 1 {
                v = op.inputs[0];
                continue;
            }
            if !op.is_alias() && at[p] == At::Output {
                at[p] = At::Caller;
                output_activation = Some(op.activation()).filter(|a| *a != Activation::Linear);
            }
            break;
        }

        // The backward schedule, copying where a shared gradient would be changed
        // while another value still needs it.
        let mut copied = vec![false; graph.values.len()];
        let Schedule {
            stmts,
            sizes: storages,
            grad: grad_of,
            ..
        } = loop {
            let schedule = schedule(&graph, &needs_to_input, &at, &through_relu, &copied);
            match schedule.clash() {
                Some(v) => copied[v] = true,
                None => break schedule,
            }
        };

        // Forward storages: alias layers share their input's; a sum may write over
        // its branch.
        let mut value_storage: Vec<usize> = (0..graph.values.len()).collect();
        for op in &graph.ops {
            if op.is_alias() {
                value_storage[op.output] = value_storage[op.inputs[0]];
            }
        }
        // Steps: the input's upload is 0, forward op i is i + 1, backward statement j
        // is n + 1 + j.
        let backward_step = |j: usize| n + 1 + j;
        let mut reads: Vec<Vec<usize>> = vec![Vec::new(); graph.values.len()];
        for (i, op) in graph.ops.iter().enumerate() {
            if !op.is_alias() {
                for &v in &op.inputs {
                    reads[v].push(i + 1);
                }
            }
        }
        for (j, stmt) in stmts.iter().enumerate() {
            for v in stmt_reads_values(stmt, &graph) {
                reads[v].push(backward_step(j));
            }
        }
        let end = n + 1 + stmts.len();
        reads[graph.output].push(end);
        let forward_life = |storage: usize, value_storage: &[usize]| {
            let mut s = Storage::default();
            for (v, &st) in value_storage.iter().enumerate() {
                if st == storage {
                    s.size = s.size.max(graph.values[v].size());
                    s.touch(producer[v].map_or(0, |p| p + 1));
                    for &r in &reads[v] {
                        s.touch(r);
                    }
                }
            }
            s
        };
        // A sum writes over its branch's output when nothing reads that again.
        for (i, op) in graph.ops.iter().enumerate() {
            if let OpKind::Add { .. } = op.kind {
                let (a, b) = (value_storage[op.inputs[0]], value_storage[op.inputs[1]]);
                if a == b || b == value_storage[graph.input] {
                    continue;
                }
                let life = forward_life(b, &value_storage);
                if life.last <= i + 1 {
                    let out = op.output;
                    for st in value_storage.iter_mut() {
                        if *st == out {
                            *st = b;
                        }
                    }
                }
            }
        }

        // Every storage's life, forward values' then gradients', on one timeline.
        let mut all: Vec<Storage> = Vec::new();
        let mut forward_index = vec![usize::MAX; graph.values.len()];
        for v in 0..graph.values.len() {
            let st = value_storage[v];
            if forward_index[st] == usize::MAX {
                forward_index[st] = all.len();
                all.push(forward_life(st, &value_storage));
            }
        }
        let grad_base = all.len();
        for (j, stmt) in stmts.iter().enumerate() {
            for g in stmt_storages(stmt) {
                if all.len() <= grad_base + g {
                    all.resize(grad_base + g + 1, Storage::default());
                }
                all[grad_base + g].size = storages[g];
                all[grad_base + g].touch(backward_step(j));
            }
        }
        // The input's gradient is read after the last statement.
        if let Some(g) = grad_of[graph.input] {
            all[grad_base + g].touch(end);
        }
        let (buffers, placed) = place(&all);
        let value_buffer: Vec<BufferId> = (0..graph.values.len())
            .map(|v| placed[forward_index[value_storage[v]]])
            .collect();
        let grad_buffer = |g: usize| placed[grad_base + g];

        let mut forward = Vec::new();
        for (i, op) in graph.ops.iter().enumerate() {
            let y = value_buffer[op.output];
            match &op.kind {
                OpKind::Layer(_) if op.is_alias() => {}
                OpKind::Layer(_) => forward.push(Forward::Layer {
                    op: i,
                    x: value_buffer[op.inputs[0]],
                    y,
                }),
                OpKind::Add { .. } => forward.push(Forward::Add {
                    op: i,
                    a: value_buffer[op.inputs[0]],
                    b: value_buffer[op.inputs[1]],
                    y,
                }),
                OpKind::Concat => {
                    for (k, &x) in op.inputs.iter().enumerate() {
                        forward.push(Forward::Concat {
                            op: i,
                            input: k,
                            x: value_buffer[x],
                            y,
                        });
                    }
                }
            }
        }
        let dx = |dx: Option<(usize, bool)>| match dx {
            None => Dx::None,
            Some((g, false)) => Dx::Write(grad_buffer(g)),
            Some((g, true)) => Dx::Add(grad_buffer(g)),
        };
        let size = |v: ValueId| graph.values[v].size();
        let lower = |stmt: &Stmt, needs: &[bool]| -> Option<Backward> {
            Some(match *stmt {
                Stmt::Seed { dy } => Backward::Seed {
                    dy: grad_buffer(dy),
                },
                Stmt::Layer {
                    op,
                    dy,
                    dx: d,
                    at,
                    through_relu,
                } => {
                    let o = &graph.ops[op];
                    if !needs[o.output] {
                        return None;
                    }
                    let t = o.traits();
                    Backward::Layer {
                        op,
                        x: t.reads_input.then(|| value_buffer[o.inputs[0]]),
                        y: t.reads_output.then(|| value_buffer[o.output]),
                        dy: grad_buffer(dy),
                        dx: if needs[o.inputs[0]] { dx(d) } else { Dx::None },
                        at,
                        through_relu,
                    }
                }
                Stmt::AddActivation { op, dy, at } => {
                    let o = &graph.ops[op];
                    if !needs[o.output] {
                        return None;
                    }
                    Backward::AddActivation {
                        op,
                        y: value_buffer[o.output],
                        dy: grad_buffer(dy),
                        at,
                    }
                }
                Stmt::Concat {
                    op,
                    input,
                    dy,
                    dx: d,
                } => {
                    if !needs[graph.ops[op].inputs[input]] {
                        return None;
                    }
                    Backward::Concat {
                        op,
                        input,
                        dy: grad_buffer(dy),
                        dx: dx(Some(d)),
                    }
                }
                Stmt::AddGradient { value, src, dst } => {
                    if !needs[value] {
                        return None;
                    }
                    Backward::AddGradient {
                        len: size(value),
                        src: grad_buffer(src),
                        dst: grad_buffer(dst),
                    }
                }
                Stmt::Copy { value, src, dst } => {
                    if !needs[value] {
                        return None;
                    }
                    Backward::Copy {
                        len: size(value),
                        src: grad_buffer(src),
                        dst: grad_buffer(dst),
                    }
                }
            })
        };
        // The schedule that reaches the input holds the other: the same statements
        // and buffers, less those that only serve the input's gradient.
        let backward = stmts.iter().filter_map(|s| lower(s, &needs)).collect();
        let backward_to_input = stmts
            .iter()
            .filter_map(|s| lower(s, &needs_to_input))
            .collect();
        let input_gradient = grad_of[graph.input].map(grad_buffer);
        Plan {
            graph,
            forward,
            backward,
            backward_to_input,
            input_gradient,
            buffers,
            value_buffer,
            output_activation,
        }
    }

    /// Values one sample takes in the workspace.
    pub fn floats_per_sample(&self) -> usize {
        self.buffers.iter().sum()
    }
}

/// The forward values a backward statement reads.
fn stmt_reads_values(stmt: &Stmt, graph: &Graph) -> Vec<ValueId> {
    match *stmt {
        Stmt::Layer { op, .. } => {
            let o = &graph.ops[op];
            let t = o.traits();
            let mut v = Vec::new();
            if t.reads_input {
                v.push(o.inputs[0]);
            }
            if t.reads_output {
                v.push(o.output);
            }
            v
        }
        Stmt::AddActivation { op, .. } => vec![graph.ops[op].output],
        _ => Vec::new(),
    }
}

/// The gradient storages a statement uses.
fn stmt_storages(stmt: &Stmt) -> Vec<usize> {
    match *stmt {
        Stmt::Seed { dy } | Stmt::AddActivation { dy, .. } => vec![dy],
        Stmt::Layer { dy, dx, .. } => std::iter::once(dy).chain(dx.map(|(g, _)| g)).collect(),
        Stmt::Concat { dy, dx, .. } => vec![dy, dx.0],
        Stmt::AddGradient { src, dst, .. } | Stmt::Copy { src, dst, .. } => vec![src, dst],
    }
}

/// A backward schedule on gradient storages.
struct Schedule {
    /// The statements.
    stmts: Vec<Stmt>,
    /// Each storage's size, in values a sample.
    sizes: Vec<usize>,
    /// Per statement, the values whose gradients it reads or changes.
    touches: Vec<Vec<(ValueId, Touch)>>,
    /// Each value's gradient storage.
    grad: Vec<Option<usize>>,
    /// The statement before which each value's gradient took its storage.
    joined: Vec<usize>,
    /// Whether each value's gradient shares a storage that another value's defined.
    shared: Vec<bool>,
}

/// The backward schedule, given the values whose gradient must be a copy rather than
/// a shared buffer.
fn schedule(
    graph: &Graph,
    needs: &[bool],
    at: &[At],
    through_relu: &[bool],
    copied: &[bool],
) -> Schedule {
    let values = graph.values.len();
    let mut s = Schedule {
        stmts: Vec::new(),
        sizes: Vec::new(),
        touches: Vec::new(),
        grad: vec![None; values],
        joined: vec![0; values],
        shared: vec![false; values],
    };
    let size = |v: ValueId| graph.values[v].size();

    let out = s.storage(size(graph.output));
    s.take(graph.output, out, false);
    s.push(Stmt::Seed { dy: out }, vec![(graph.output, Touch::Change)]);

    for (o, op) in graph.ops.iter().enumerate().rev() {
        let v = op.output;
        if !needs[v] {
            continue;
        }
        let Some(dy) = s.grad[v] else { continue };
        match &op.kind {
            OpKind::Layer(_) if op.is_alias() => s.share(op.inputs[0], v, dy, needs, copied, size),
            OpKind::Layer(_) => {
                let u = op.inputs[0];
                let mut touches = vec![(v, Touch::Read)];
                let traits = op.traits();
                if traits.overwrites_output_grad && at[o] != At::PreActivation {
                    touches.push((v, Touch::Change));
                }
                let mut then = None;
                let dx = if !needs[u] {
                    None
                } else {
                    touches.push((u, Touch::Change));
                    match s.grad[u] {
                        None => {
                            let g = s.storage(size(u));
                            s.take(u, g, false);
                            Some((g, false))
                        }
                        Some(g) if traits.accumulates_input_grad => Some((g, true)),
                        Some(g) => {
                            // Written to scratch, then added.
                            touches.pop();
                            let scratch = s.storage(size(u));
                            then = Some((scratch, g));
                            Some((scratch, false))
                        }
                    }
                };
                let stmt = Stmt::Layer {
                    op: o,
                    dy,
                    dx,
                    at: at[o],
                    through_relu: through_relu[o],
                };
                s.push(stmt, touches);
                if let Some((src, dst)) = then {
                    let stmt = Stmt::AddGradient { value: u, src, dst };
                    s.push(stmt, vec![(u, Touch::Change)]);
                }
            }
            OpKind::Add { activation } => {
                if *activation != Activation::Linear {
                    let stmt = Stmt::AddActivation {
                        op: o,
                        dy,
                        at: at[o],
                    };
                    s.push(stmt, vec![(v, Touch::Change)]);
                }
                for &u in &op.inputs {
                    s.share(u, v, dy, needs, copied, size);
                }
            }
            OpKind::Concat => {
                for (k, &u) in op.inputs.iter().enumerate() {
                    if !needs[u] {
                        continue;
                    }
                    let dx = match s.grad[u] {
                        None => {
                            let g = s.storage(size(u));
                            s.take(u, g, false);
                            (g, false)
                        }
                        Some(g) => (g, true),
                    };
                    let stmt = Stmt::Concat {
                        op: o,
                        input: k,
                        dy,
                        dx,
                    };
                    s.push(stmt, vec![(v, Touch::Read), (u, Touch::Change)]);
                }
            }
        }
    }
    s
}

impl Schedule {
    fn storage(&mut self, size: usize) -> usize {
        self.sizes.push(size);
        self.sizes.len() - 1
    }

    fn push(&mut self, stmt: Stmt, touches: Vec<(ValueId, Touch)>) {
        self.stmts.push(stmt);
        self.touches.push(touches);
    }

    /// `u`'s gradient lives in storage `g` from the next statement on.
    fn take(&mut self, u: ValueId, g: usize, shared: bool) {
        self.grad[u] = Some(g);
        self.joined[u] = self.stmts.len();
        self.shared[u] = shared;
    }

    /// `v`'s gradient `dy` passed on unchanged to `u`: the same storage when `u` has
    /// no gradient yet (a copy when `copied` says so), else added to it.
    fn share(
        &mut self,
        u: ValueId,
        v: ValueId,
        dy: usize,
        needs: &[bool],
        copied: &[bool],
        size: impl Fn(ValueId) -> usize,
    ) {
        if !needs[u] {
            return;
        }
        match self.grad[u] {
            None if !copied[u] => self.take(u, dy, true),
            None => {
                let g = self.storage(size(u));
                self.take(u, g, false);
                let stmt = Stmt::Copy {
                    value: u,
                    src: dy,
                    dst: g,
                };
                self.push(stmt, vec![(v, Touch::Read), (u, Touch::Change)]);
            }
            Some(g) => {
                let stmt = Stmt::AddGradient {
                    value: u,
                    src: dy,
                    dst: g,
                };
                self.push(stmt, vec![(v, Touch::Read), (u, Touch::Change)]);
            }
        }
    }

    /// A value whose gradient must be a copy: it shares a storage with another value's
    /// gradient, and one of the two changes it while the other still needs what it
    /// held. `None` when the schedule has no such clash.
    fn clash(&self) -> Option<ValueId> {
        let values = self.grad.len();
        let mut last_use = vec![None; values];
        for (j, touches) in self.touches.iter().enumerate() {
            for &(v, _) in touches {
                last_use[v] = Some(j);
            }
        }
        for (j, touches) in self.touches.iter().enumerate() {
            for &(v, touch) in touches {
                let Some(g) = self.grad[v].filter(|_| touch == Touch::Change) else {
                    continue;
                };
                let clash = (0..values).find(|&w| {
                    w != v
                        && self.grad[w] == Some(g)
                        && self.joined[w] <= j
                        && last_use[w].is_some_and(|last| last >= j)
                });
                if let Some(w) = clash {
                    // The one that joined the storage by sharing gets a copy of its own.
                    return Some(if self.shared[v] { v } else { w });
                }
            }
        }
        None
    }
}

/// Places storages in buffers: storages whose lives do not overlap share one, best
/// fit first (the smallest free buffer that holds it, else the largest free one,
/// grown). Returns the buffers' sizes and each storage's buffer.
fn place(storages: &[Storage]) -> (Vec<usize>, Vec<BufferId>) {
    let mut order: Vec<usize> = (0..storages.len())
        .filter(|&s| storages[s].first.is_some())
        .collect();
    order.sort_by_key(|&s| (storages[s].first, s));
    let mut sizes: Vec<usize> = Vec::new();
    let mut free_after: Vec<usize> = Vec::new();
    let mut placed = vec![usize::MAX; storages.len()];
    for s in order {
        let st = &storages[s];
        let start = st.first.unwrap_or(0);
        let free: Vec<BufferId> = (0..sizes.len())
            .filter(|&b| free_after[b] < start)
            .collect();
        let fit = free
            .iter()
            .copied()
            .filter(|&b| sizes[b] >= st.size)
            .min_by_key(|&b| (sizes[b], b))
            .or_else(|| {
                free.iter()
                    .copied()
                    .max_by_key(|&b| (sizes[b], usize::MAX - b))
            });
        let b = match fit {
            Some(b) => b,
            None => {
                sizes.push(0);
                free_after.push(0);
                sizes.len() - 1
            }
        };
        sizes[b] = sizes[b].max(st.size);
        free_after[b] = st.last;
        placed[s] = b;
    }
    (sizes, placed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check;
    use crate::parse::parse;
    use proc_macro2::TokenStream;
    use quote::quote;

    fn model(tokens: TokenStream) -> Model {
        check(parse(tokens).unwrap()).unwrap_or_else(|(_, e)| panic!("{e}"))
    }

    /// The backward statements as `(kind, op's layer or "")`, for reading orders.
    fn layer_of(plan: &Plan, op: usize) -> String {
        match plan.graph.ops[op].kind {
            OpKind::Layer(l) => l.path.clone(),
            OpKind::Add { .. } => "+".into(),
            OpKind::Concat => "cat".into(),
        }
    }

    fn seed() -> Model {
        model(quote! {
            struct SeedCnn {
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
    }

    #[test]
    fn a_chain_runs_each_layer_once_each_way() {
        let m = seed();
        let plan = Plan::new(&m);
        // `Flatten` gives its output its input's buffer and never runs.
        assert_eq!(plan.forward.len(), 8);
        let layers: Vec<String> = plan
            .backward
            .iter()
            .filter_map(|s| match s {
                Backward::Layer { op, .. } => Some(layer_of(&plan, *op)),
                _ => None,
            })
            .collect();
        assert_eq!(
            layers,
            [
                "out", "fc1", "pool3", "conv3", "pool2", "conv2", "pool1", "conv1"
            ]
        );
        assert!(matches!(plan.backward[0], Backward::Seed { .. }));
        // Only sums of gradients could add statements; a chain has none.
        assert_eq!(plan.backward.len(), 9);
        for stmt in &plan.backward {
            let Backward::Layer {
                op,
                dx,
                at,
                through_relu,
                ..
            } = *stmt
            else {
                continue;
            };
            let name = layer_of(&plan, op);
            // The output's layer takes the caller's `at`; each pooling takes the ReLU
            // below over, and the convolution before it gets its gradient past it.
            let want_at = match name.as_str() {
                "out" => At::Caller,
                "conv1" | "conv2" | "conv3" => At::PreActivation,
                _ => At::Output,
            };
            assert_eq!(at, want_at, "{name}");
            assert_eq!(through_relu, name.starts_with("pool"), "{name}");
            // The first layer's input needs no gradient.
            assert_eq!(dx == Dx::None, name == "conv1", "{name}");
        }
        assert_eq!(plan.output_activation, Some(Activation::Softmax));
        // Reaching the input adds the first convolution's input gradient only.
        assert_eq!(plan.backward_to_input.len(), plan.backward.len());
        assert!(plan.backward_to_input.iter().any(|s| matches!(
            s,
            Backward::Layer {
                dx: Dx::Write(_),
                op: 0,
                ..
            }
        )));
    }

    #[test]
    fn the_seed_cnn_shares_dead_activations_with_gradients() {
        let m = seed();
        let plan = Plan::new(&m);
        // Every activation is read by the backward pass (54,890 values a sample); the
        // gradients reuse the buffers of activations whose readers have run, grown
        // where the gradient is larger. The chain's layout before the plan had every
        // activation and two gradient buffers of the largest size: 112,490.
        assert_eq!(plan.floats_per_sample(), 90_890);
    }

    #[test]
    fn an_identity_shortcut_lends_its_gradient_and_the_branch_adds_to_it() {
        let m = model(quote! {
            struct M {
                input: [8, 8, 4],
                stem: Conv2d(4, 3, padding = same, activation = relu),
                res: Residual(activation = relu) {
                    a: Conv2d(4, 3, padding = same, activation = relu),
                    b: Conv2d(4, 3, padding = same),
                },
                flat: Flatten,
                out: Dense(2),
            }
        });
        let plan = Plan::new(&m);
        // The sum writes over `b`'s output, which nothing reads again.
        let add = plan
            .forward
            .iter()
            .find_map(|s| match *s {
                Forward::Add { b, y, .. } => Some((b, y)),
                _ => None,
            })
            .unwrap();
        assert_eq!(add.0, add.1);
        // No copy: the sum's gradient is the shortcut's and the branch's, and `a`,
        // the first layer of the branch, adds its input gradient to it.
        assert!(
            !plan
                .backward
                .iter()
                .any(|s| matches!(s, Backward::Copy { .. }))
        );
        assert!(
            !plan
                .backward
                .iter()
                .any(|s| matches!(s, Backward::AddGradient { .. }))
        );
        let a = plan
            .backward
            .iter()
            .find_map(|s| match *s {
                Backward::Layer { op, dx, .. } if layer_of(&plan, op) == "res.a" => Some(dx),
                _ => None,
            })
            .unwrap();
        let Dx::Add(into) = a else {
            panic!("res.a writes its input gradient: {a:?}")
        };
        // That buffer is the sum's output gradient, which `b` read before.
        let b_dy = plan
            .backward
            .iter()
            .find_map(|s| match *s {
                Backward::Layer { op, dy, .. } if layer_of(&plan, op) == "res.b" => Some(dy),
                _ => None,
            })
            .unwrap();
        assert_eq!(into, b_dy);
    }

    #[test]
    fn a_branch_that_changes_the_shared_gradient_gets_a_copy() {
        // `a` differentiates its sigmoid in place on the gradient it shares with the
        // identity shortcut, which `a` then adds its input gradient to.
        let m = model(quote! {
            struct M {
                input: [6],
                stem: Dense(6),
                res: Residual { a: Dense(6, sigmoid) },
                out: Dense(2),
            }
        });
        let plan = Plan::new(&m);
        let copies = plan
            .backward
            .iter()
            .filter(|s| matches!(s, Backward::Copy { .. }))
            .count();
        assert_eq!(copies, 1);
    }

    #[test]
    fn a_layer_that_cannot_add_writes_to_scratch_then_the_plan_adds() {
        let m = model(quote! {
            struct M {
                input: [6, 6, 2],
                stem: Conv2d(2, 1),
                res: Residual { pool: AvgPool2d(3, stride = 1, padding = same) },
                flat: Flatten,
                out: Dense(2),
            }
        });
        let plan = Plan::new(&m);
        let pool = plan
            .backward
            .iter()
            .position(
                |s| matches!(s, Backward::Layer { op, .. } if layer_of(&plan, *op) == "res.pool"),
            )
            .unwrap();
        let Backward::Layer {
            dx: Dx::Write(scratch),
            ..
        } = plan.backward[pool]
        else {
            panic!("the pooling does not write")
        };
        assert!(matches!(
            plan.backward[pool + 1],
            Backward::AddGradient { src, len: 72, .. } if src == scratch
        ));
    }

    #[test]
    fn a_concatenation_writes_then_adds_its_inputs_gradients() {
        let m = model(quote! {
            struct M {
                input: [4, 4, 2],
                stem: Conv2d(3, 1),
                cat: Concat { a: Conv2d(2, 1), b: Identity, c: Conv2d(1, 3, padding = same) },
                flat: Flatten,
                out: Dense(2),
            }
        });
        let plan = Plan::new(&m);
        let cat: Vec<Dx> = plan
            .backward
            .iter()
            .filter_map(|s| match *s {
                Backward::Concat { dx, .. } => Some(dx),
                _ => None,
            })
            .collect();
        assert_eq!(cat.len(), 3);
        assert!(cat.iter().all(|d| matches!(d, Dx::Write(_))));
        // Backward goes in reverse: `c` writes the stem output's gradient, the identity
        // branch's is added to it, and `a` adds its own.
        let into_stem: Vec<&Backward> = plan
            .backward
            .iter()
            .filter(|s| match s {
                Backward::Layer { op, .. } => layer_of(&plan, *op) != "out",
                Backward::AddGradient { .. } => true,
                _ => false,
            })
            .collect();
        assert!(matches!(
            into_stem[0],
            Backward::Layer {
                dx: Dx::Write(_),
                ..
            }
        ));
        assert!(matches!(
            into_stem[1],
            Backward::AddGradient { len: 48, .. }
        ));
        assert!(matches!(
            into_stem[2],
            Backward::Layer { dx: Dx::Add(_), .. }
        ));
    }
}
