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

mod graph;
mod schedule;

use kiln_shape::Activation;

pub use graph::{Graph, OpKind, ValueId};
use schedule::{Schedule, Stmt, schedule};

use crate::check::Model;

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
mod tests;
