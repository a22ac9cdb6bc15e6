//! Models with blocks: residual sums (identity and projection shortcuts, nested),
//! concatenations, and values that feed several consumers. Their gradients against
//! finite differences, their names, counts and summaries, and the workspace their
//! plan gives.

#![deny(missing_docs, unused, clippy::all)]
// The harness is shared by the tests below; a failing call fails the test.
#![allow(clippy::unwrap_used)]

use kiln::prelude::*;

kiln::model! {
    /// The residual network of the block syntax's example.
    pub struct SmallResNet {
        input: [32, 32, 3],
        stem: Conv2d(32, 3, padding = same, activation = relu),
        res1: Residual(activation = relu) {
            a: Conv2d(32, 3, padding = same, activation = relu),
            b: Conv2d(32, 3, padding = same),
        },
        res2: Residual(activation = relu) {
            a: Conv2d(64, 3, stride = 2, padding = same, activation = relu),
            b: Conv2d(64, 3, padding = same),
            shortcut: Conv2d(64, 1, stride = 2),
        },
        gap: GlobalAvgPool2d,
        out: Dense(10, softmax),
    }
}

kiln::model! {
    /// Smooth activations only, so that finite differences hold, and every way a
    /// value can feed several consumers: an identity shortcut around a branch whose
    /// last layer changes its gradient in place, a projection shortcut written first
    /// (a convolution and a batch normalisation, as ResNets project),
    /// a nested block, a concatenation whose input feeds three branches (one the
    /// identity), a branch that starts with a layer that cannot add to a gradient
    /// (average pooling), and a sum of a value with itself.
    struct Smooth {
        input: [6, 6, 2],
        stem: Conv2d(3, 3, padding = same, activation = tanh),
        res: Residual(activation = tanh) {
            a: Conv2d(3, 3, padding = same, activation = sigmoid),
        },
        proj: Residual {
            shortcut: Sequential { conv: Conv2d(4, 1, stride = 2), bn: BatchNorm },
            a: Conv2d(4, 3, stride = 2, padding = same),
            bn: BatchNorm(tanh),
            inner: Residual(activation = sigmoid) {
                b: Conv2d(4, 1),
                c: Conv2d(4, 3, padding = same),
            },
        },
        mix: Concat {
            one: Conv2d(2, 1, activation = tanh),
            wide: Sequential {
                pool: AvgPool2d(3, stride = 1, padding = same),
                conv: Conv2d(3, 3, padding = same),
            },
            skip: Identity,
        },
        twice: Residual { same: Identity },
        flat: Flatten,
        out: Dense(3),
    }
}

kiln::model! {
    /// Blocks on feature vectors: residual sums (one ending in a batch normalisation)
    /// and a concatenation of dense layers.
    struct Vectors {
        input: [5],
        hidden: Dense(6, tanh),
        res: Residual(activation = tanh) {
            a: Dense(6, sigmoid),
            b: Dense(6),
            norm: BatchNorm(convention = pytorch),
        },
        cat: Concat {
            left: Dense(2, tanh),
            right: Dense(3),
        },
        same: Residual {
            a: Dense(5, tanh),
            shortcut: Dense(5),     // a learned projection, though the shapes agree
        },
        out: Dense(2),
    }
}

kiln::model! {
    /// Blocks and layers named like Rust keywords, as raw identifiers.
    struct Keywords {
        input: [4],
        r#type: Residual(activation = tanh) {
            r#match: Dense(4, tanh),
            r#loop: Sequential { r#fn: Dense(4) },
        },
        r#mod: Dense(2),
    }
}

fn cpu() -> Cpu {
    Cpu::with_threads(2).unwrap()
}

#[test]
fn parameters_count_as_keras_counts_the_functional_model() {
    // stem 3*3*3*32 + 32; res1 two 3*3*32*32 + 32; res2 3*3*32*64 + 64 and
    // 3*3*64*64 + 64, its shortcut 32*64 + 64; out 64*10 + 10.
    let expected = 896 + 2 * 9_248 + 18_496 + 36_928 + 2_112 + 650;
    assert_eq!(<SmallResNet>::PARAMETERS, expected);
    assert_eq!(expected, 77_578);
    assert_eq!(<SmallResNet>::OUTPUT_SHAPE, Shape::new(&[10]));
    assert_eq!(
        <SmallResNet>::OUTPUT_ACTIVATION,
        Some(kiln::shape::Activation::Softmax)
    );
}

#[test]
fn the_layer_table_qualifies_names_inside_blocks() {
    let rows: Vec<(&str, &str, usize)> = <SmallResNet>::LAYERS
        .iter()
        .map(|l| (l.name, l.kind, l.depth))
        .collect();
    assert_eq!(
        rows,
        [
            ("stem", "Conv2d", 0),
            ("res1", "Residual", 0),
            ("res1.a", "Conv2d", 1),
            ("res1.b", "Conv2d", 1),
            ("res2", "Residual", 0),
            ("res2.a", "Conv2d", 1),
            ("res2.b", "Conv2d", 1),
            ("res2.shortcut", "Conv2d", 1),
            ("gap", "GlobalAvgPool2d", 0),
            ("out", "Dense", 0),
        ]
    );
    let res2 = &<SmallResNet>::LAYERS[4];
    assert_eq!(res2.output_shape, Shape::new(&[16, 16, 64]));
    assert_eq!(res2.parameters, 18_496 + 36_928 + 2_112);
    let summary = <SmallResNet>::summary();
    assert!(summary.contains(" res2 (Residual)"), "{summary}");
    assert!(summary.contains("   res2.shortcut (Conv2d)"), "{summary}");
    assert!(summary.contains("Total params: 77,578"), "{summary}");
}

#[test]
fn tensors_are_named_by_their_path() {
    let cpu = cpu();
    let model = SmallResNet::new(&cpu, 2, 0).unwrap();
    let mut keys = Vec::new();
    model
        .parameters(&mut |p| {
            keys.push(p.key());
            Ok(())
        })
        .unwrap();
    assert_eq!(
        keys,
        [
            "stem.weight",
            "stem.bias",
            "res1.a.weight",
            "res1.a.bias",
            "res1.b.weight",
            "res1.b.bias",
            "res2.a.weight",
            "res2.a.bias",
            "res2.b.weight",
            "res2.b.bias",
            "res2.shortcut.weight",
            "res2.shortcut.bias",
            "out.weight",
            "out.bias",
        ]
    );
    // The blocks are fields, and their layers fields of theirs.
    let _: &kiln::nn::Conv2d<Cpu> = &model.res2.shortcut;
}

#[test]
fn blocks_and_layers_may_be_named_like_keywords() {
    let rows: Vec<&str> = <Keywords>::LAYERS.iter().map(|l| l.name).collect();
    assert_eq!(
        rows,
        ["type", "type.match", "type.loop", "type.loop.fn", "mod"]
    );
    let cpu = cpu();
    let model = Keywords::new(&cpu, 2, 0).unwrap();
    let mut keys = Vec::new();
    model
        .parameters(&mut |p| {
            keys.push(p.key());
            Ok(())
        })
        .unwrap();
    assert_eq!(keys[0], "type.match.weight");
    assert_eq!(keys[2], "type.loop.fn.weight");
    // The fields keep their raw names.
    let _: &kiln::nn::Dense<Cpu> = &model.r#type.r#loop.r#fn;
}

/// `sum(w * output)` for the batch `x`, in f64, in training mode (normalisation with
/// the batch's statistics, as the backward pass differentiates it; the models here
/// have no dropout).
fn weighted_output<M: Model<Cpu>>(model: &mut M, x: &[f32], w: &[f32]) -> f64 {
    let cpu = model.backend().clone();
    let y = model
        .forward_host(x, Mode::Train)
        .unwrap()
        .to_vec(&cpu)
        .unwrap();
    y.iter()
        .zip(w)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum()
}

/// Every parameter tensor's values and gradients on the host, in visiting order.
fn tensors<M: Model<Cpu>>(model: &M) -> Vec<(String, Vec<f32>, Vec<f32>)> {
    let cpu = model.backend().clone();
    let mut out = Vec::new();
    model
        .parameters(&mut |p| {
            let value = cpu.to_host(p.value, p.shape.size())?;
            let grad = cpu.to_host(p.grad, p.shape.size())?;
            out.push((p.key(), value, grad));
            Ok(())
        })
        .unwrap();
    out
}

fn set_tensor<M: Model<Cpu>>(model: &mut M, index: usize, values: &[f32]) {
    let cpu = model.backend().clone();
    let mut seen = 0;
    model
        .visit_parameters(&mut |p| {
            if seen == index {
                cpu.upload(values, p.value)?;
            }
            seen += 1;
            Ok(())
        })
        .unwrap();
}

/// Checks every parameter gradient (at three places a tensor) and the input gradient
/// of `model` against central differences of `sum(w * output)`, on a batch of
/// `model.max_batch()` samples.
fn check_gradients<M>(mut model: M, seed: usize)
where
    M: Model<Cpu>,
{
    let cpu = model.backend().clone();
    let batch = model.max_batch();
    let (input, output) = (M::INPUT_SHAPE.size(), M::OUTPUT_SHAPE.size());
    let x: Vec<f32> = (0..batch * input)
        .map(|i| (((i + seed) * 37) % 23) as f32 / 11.0 - 1.0)
        .collect();
    let w: Vec<f32> = (0..batch * output)
        .map(|i| ((i * 7 + 3) % 5) as f32 / 2.0 - 1.0)
        .collect();
    let grad = Tensor::<M::Output, Cpu>::from_slice(&cpu, batch, &w).unwrap();
    let mut dx = Tensor::<M::Input, Cpu>::zeros(&cpu, batch).unwrap();
    model.forward_host(&x, Mode::Train).unwrap();
    model.zero_grad().unwrap();
    model
        .backward_to_input(&grad, GradAt::Output, &mut dx)
        .unwrap();
    let input_grad = dx.to_vec(&cpu).unwrap();
    let analytic = tensors(&model);

    let eps = 1e-2;
    let close = |numeric: f64, exact: f64| (numeric - exact).abs() <= 2e-3 + 2e-2 * exact.abs();
    let mut nonzero = 0;
    for (t, (key, values, grads)) in analytic.iter().enumerate() {
        for i in [0, values.len() / 2, values.len() - 1] {
            let mut probe = |delta: f32| {
                let mut v = values.clone();
                v[i] += delta;
                set_tensor(&mut model, t, &v);
                weighted_output(&mut model, &x, &w)
            };
            let numeric = (probe(eps) - probe(-eps)) / (2.0 * f64::from(eps));
            probe(0.0);
            let exact = f64::from(grads[i]);
            nonzero += usize::from(exact != 0.0);
            assert!(
                close(numeric, exact),
                "{key}[{i}]: finite difference {numeric}, backward {exact}"
            );
        }
    }
    for i in (0..x.len()).step_by(x.len() / 10) {
        let mut probe = |delta: f32| {
            let mut xp = x.clone();
            xp[i] += delta;
            weighted_output(&mut model, &xp, &w)
        };
        let numeric = (probe(eps) - probe(-eps)) / (2.0 * f64::from(eps));
        let exact = f64::from(input_grad[i]);
        assert!(
            close(numeric, exact),
            "input[{i}]: finite difference {numeric}, backward {exact}"
        );
    }
    assert!(nonzero * 2 > analytic.len() * 3, "too many zero gradients");
}

#[test]
fn residual_and_concatenated_gradients_match_finite_differences() {
    let cpu = cpu();
    check_gradients(Smooth::new(&cpu, 2, 3).unwrap(), 1);
    // A batch normalisation of vectors sees one value a sample: with two samples it
    // would be close to a sign function.
    check_gradients(Vectors::new(&cpu, 6, 4).unwrap(), 2);
    check_gradients(Keywords::new(&cpu, 3, 5).unwrap(), 3);
}

#[test]
fn backward_without_the_input_gives_the_same_parameter_gradients() {
    let cpu = cpu();
    let x: Vec<f32> = (0..2 * 72).map(|i| (i as f32 * 0.37).sin()).collect();
    let g: Vec<f32> = (0..2 * 3).map(|i| i as f32 - 2.5).collect();
    let grad = Tensor::<Rank1<3>, Cpu>::from_slice(&cpu, 2, &g).unwrap();
    let run = |to_input: bool| {
        let mut model = Smooth::new(&cpu, 2, 5).unwrap();
        model.forward_host(&x, Mode::Train).unwrap();
        model.zero_grad().unwrap();
        if to_input {
            let mut dx = Tensor::<Rank3<6, 6, 2>, Cpu>::zeros(&cpu, 2).unwrap();
            model.backward_to_input(&grad, GradAt::Output, &mut dx)
        } else {
            model.backward(&grad, GradAt::Output)
        }
        .unwrap();
        tensors(&model)
    };
    assert_eq!(run(false), run(true));
}

#[test]
fn a_residual_sum_is_written_over_its_branch() {
    // SmallResNet's tensors a sample: 32,768 values at 32x32x32, 16,384 at 16x16x64.
    // The backward pass reads the input, the stem's output, each block's first
    // convolution's output and its sum (ReLU), the pooled 64 and the 10 outputs. A
    // branch's last convolution is linear, so nothing reads its output after the sum,
    // which is written over it: a block keeps two tensors, as two plain convolutions
    // would. The projection shortcut's output lives only until the sum.
    let kept = 3_072 + 3 * 32_768 + 2 * 16_384 + 64 + 10;
    let workspace = <SmallResNet>::WORKSPACE_FLOATS_PER_SAMPLE;
    assert!(workspace >= kept, "{workspace}");
    // The gradients need two tensors of the largest size at once (a block's output
    // gradient, shared by its shortcut and its branch, and the first convolution's);
    // the shortcut's output and a third buffer are slack for fragmentation.
    assert!(workspace <= kept + 16_384 + 3 * 32_768, "{workspace}");
}
