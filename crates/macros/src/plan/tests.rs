//! Tests of the plan: statements, fusions, shared gradients and buffers.

use super::*;
use crate::check::check;
use crate::parse::parse;
use proc_macro2::TokenStream;
use quote::quote;

fn model(tokens: TokenStream) -> Model {
    check(parse(tokens).unwrap()).unwrap_or_else(|(_, e)| panic!("{e}"))
}

/// The name of op `op`: its layer's path, `+` for a sum, `cat` for a concatenation.
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
        .position(|s| matches!(s, Backward::Layer { op, .. } if layer_of(&plan, *op) == "res.pool"))
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

/// `GRAPH` numbers values as the graph does: op `i` writes value `i + 1`, and the
/// last op writes the output, whatever the blocks.
#[test]
fn each_op_writes_the_next_value_and_the_last_writes_the_output() {
    let m = model(quote! {
        struct Net {
            input: [8, 8, 4],
            res: Residual(activation = relu) {
                a: Conv2d(4, 3, padding = same),
                shortcut: Sequential { p: Conv2d(4, 1), q: Relu },
            },
            mix: Concat { a: Identity, b: Residual { c: Conv2d(4, 1) } },
        }
    });
    let plan = Plan::new(&m);
    for (i, op) in plan.graph.ops.iter().enumerate() {
        assert_eq!(op.output, i + 1, "{}", op.name);
    }
    assert_eq!(plan.graph.output, plan.graph.ops.len());
    let names: Vec<&str> = plan.graph.ops.iter().map(|o| o.name).collect();
    assert_eq!(
        names,
        [
            "res.a",
            "res.shortcut.p",
            "res.shortcut.q",
            "res",
            "mix.a",
            "mix.b.c",
            "mix.b",
            "mix"
        ]
    );
}
