//! The backward schedule: the statements on gradient storages, in the order they
//! run, with the gradients that consumers share, and the check that no shared
//! gradient is changed while another value still needs it.

use kiln_shape::Activation;

use super::At;
use super::graph::{Graph, OpKind, ValueId};

/// A statement of the backward pass on storages, before buffers are chosen.
#[derive(Clone, Debug)]
pub(super) enum Stmt {
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
pub(super) enum Touch {
    Read,
    Change,
}

/// A backward schedule on gradient storages.
pub(super) struct Schedule {
    /// The statements.
    pub(super) stmts: Vec<Stmt>,
    /// Each storage's size, in values a sample.
    pub(super) sizes: Vec<usize>,
    /// Per statement, the values whose gradients it reads or changes.
    touches: Vec<Vec<(ValueId, Touch)>>,
    /// Each value's gradient storage.
    pub(super) grad: Vec<Option<usize>>,
    /// The statement before which each value's gradient took its storage.
    joined: Vec<usize>,
    /// Whether each value's gradient shares a storage that another value's defined.
    shared: Vec<bool>,
}

/// The backward schedule, given the values whose gradient must be a copy rather than
/// a shared buffer.
pub(super) fn schedule(
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
    pub(super) fn clash(&self) -> Option<ValueId> {
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
