//! End-to-end tests of the code `model!` generates: constants, summary, named
//! arguments, rank-1 inputs, forward, backward and the run-time errors.

#![deny(missing_docs, unused, clippy::all)]

use kiln::nn::Error;
use kiln::prelude::*;

kiln::model! {
    /// The CNN of the Keras CIFAR-10 tutorial.
    pub struct SeedCnn {
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
}

kiln::model! {
    /// Every named form, `same` padding and stride 2.
    struct Named {
        input: [9, 9, 2],
        conv: Conv2d(filters = 4, kernel = (3, 3), stride = 2, padding = same, activation = leaky_relu),
        pool: AvgPool2d(size = 2, stride = 1, padding = valid),
        act: LeakyRelu(negative_slope = 0.1),
        gap: GlobalAvgPool2d,
        drop: Dropout(rate = 0.25),
        out: Dense(units = 3, activation = sigmoid),
    }
}

kiln::model! {
    /// A multi-layer perceptron on feature vectors.
    pub(crate) struct Mlp {
        input: [6],
        hidden: Dense(16, tanh),
        act: Gelu,
        drop: Dropout(0),
        out: Dense(4),
        probs: Softmax,
    }
}

kiln::model! {
    /// A rank-2 (sequence) input, ending in `Flatten`, with a raw identifier.
    struct Seq {
        input: [4, 3],
        r#type: Sigmoid,
        flat: Flatten,
    }
}

kiln::model! {
    /// Smooth layers only, so that finite differences hold; `Flatten` in the middle.
    struct Smooth {
        input: [5, 5, 2],
        conv: Conv2d(3, 2, tanh),
        pool: AvgPool2d(2),
        flat: Flatten,
        fc: Dense(4, sigmoid),
        act: Tanh,
        out: Dense(3, softmax),
    }
}

kiln::model! {
    /// Max pooling right after a layer's ReLU: the pool's backward pass goes through
    /// the ReLU.
    struct PoolAfterRelu {
        input: [9, 8, 3],
        conv: Conv2d(6, 3, relu),
        pool: MaxPool2d(2),
        flat: Flatten,
        out: Dense(3),
    }
}

kiln::model! {
    /// The same with an identity (`Dropout(0)`) before the pool, so that each layer
    /// runs its own backward pass: the oracle for `PoolAfterRelu`.
    struct PoolAfterReluApart {
        input: [9, 8, 3],
        conv: Conv2d(6, 3, relu),
        keep: Dropout(0),
        pool: MaxPool2d(2),
        flat: Flatten,
        out: Dense(3),
    }
}

kiln::model! {
    /// Max pooling right after a `Relu` layer.
    struct PoolAfterReluLayer {
        input: [9, 8, 3],
        conv: Conv2d(6, 3),
        act: Relu,
        pool: MaxPool2d(2),
        flat: Flatten,
        out: Dense(3),
    }
}

kiln::model! {
    /// The oracle for `PoolAfterReluLayer`.
    struct PoolAfterReluLayerApart {
        input: [9, 8, 3],
        conv: Conv2d(6, 3),
        act: Relu,
        keep: Dropout(0),
        pool: MaxPool2d(2),
        flat: Flatten,
        out: Dense(3),
    }
}

fn cpu() -> kiln::Result<Cpu> {
    Ok(Cpu::with_threads(1)?)
}

#[test]
fn seed_cnn_has_keras_parameter_count() {
    assert_eq!(<SeedCnn>::PARAMETERS, 160_202);
    assert_eq!(<SeedCnn as Model<Cpu>>::PARAMETERS, 160_202);
    assert_eq!(<SeedCnn>::INPUT_SHAPE, Shape::new(&[32, 32, 3]));
    assert_eq!(<SeedCnn>::OUTPUT_SHAPE, Shape::new(&[10]));
    assert_eq!(<SeedCnn>::NAME, "SeedCnn");
    assert_eq!(
        <SeedCnn>::OUTPUT_ACTIVATION,
        Some(kiln::shape::Activation::Softmax)
    );
    let per_layer: usize = [
        30 * 30 * 32,
        15 * 15 * 32,
        13 * 13 * 64,
        6 * 6 * 64,
        4 * 4 * 128,
        2 * 2 * 128,
        128,
        10,
    ]
    .iter()
    .sum();
    // Every activation is read by the backward pass, so all of them stay; the
    // gradients take the buffers of activations that are dead by then, and need at
    // most the two largest at once (the first convolution's output and input
    // gradients).
    let activations = 32 * 32 * 3 + per_layer;
    let workspace = <SeedCnn>::WORKSPACE_FLOATS_PER_SAMPLE;
    assert!(
        workspace >= activations + 30 * 30 * 32 + 15 * 15 * 32,
        "{workspace}"
    );
    // Two gradient buffers of the largest layer's size, besides every activation,
    // was the chain's layout before the plan.
    assert!(workspace < activations + 2 * 30 * 30 * 32, "{workspace}");
}

#[test]
fn seed_cnn_summary_lists_every_shape_and_count() {
    let summary = <SeedCnn>::summary();
    let expected = [
        ("conv1 (Conv2d)", "(30, 30, 32)", "896"),
        ("pool1 (MaxPool2d)", "(15, 15, 32)", "0"),
        ("conv2 (Conv2d)", "(13, 13, 64)", "18,496"),
        ("pool2 (MaxPool2d)", "(6, 6, 64)", "0"),
        ("conv3 (Conv2d)", "(4, 4, 128)", "73,856"),
        ("pool3 (MaxPool2d)", "(2, 2, 128)", "0"),
        ("flat (Flatten)", "(512)", "0"),
        ("fc1 (Dense)", "(128)", "65,664"),
        ("out (Dense)", "(10)", "1,290"),
    ];
    let rows: Vec<&str> = summary.lines().collect();
    for (layer, shape, params) in expected {
        let row = rows
            .iter()
            .find(|r| r.contains(layer))
            .unwrap_or_else(|| panic!("no row for {layer} in\n{summary}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.last(), Some(&params), "{row}");
        assert!(row.contains(shape), "{row}");
    }
    assert!(summary.contains("Total params: 160,202"), "{summary}");
    let layers = <SeedCnn>::LAYERS;
    assert_eq!(layers.len(), 9);
    assert_eq!(layers[6].name, "flat");
    assert_eq!(layers[6].kind, "Flatten");
}

#[test]
fn named_arguments_compute_their_shapes() {
    // conv: ceil(9 / 2) = 5 -> [5, 5, 4]; pool 2 stride 1 -> [4, 4, 4]; gap -> [4].
    let shapes: Vec<Shape> = <Named>::LAYERS.iter().map(|l| l.output_shape).collect();
    assert_eq!(
        shapes,
        [
            Shape::new(&[5, 5, 4]),
            Shape::new(&[4, 4, 4]),
            Shape::new(&[4, 4, 4]),
            Shape::new(&[4]),
            Shape::new(&[4]),
            Shape::new(&[3]),
        ]
    );
    assert_eq!(<Named>::PARAMETERS, (3 * 3 * 2 * 4 + 4) + (4 * 3 + 3));
    assert_eq!(
        <Named>::OUTPUT_ACTIVATION,
        Some(kiln::shape::Activation::Sigmoid)
    );
}

#[test]
fn mlp_forward_gives_probabilities() {
    let cpu = cpu().unwrap();
    assert_eq!(<Mlp>::INPUT_SHAPE, Shape::new(&[6]));
    assert_eq!(<Mlp>::PARAMETERS, 6 * 16 + 16 + 16 * 4 + 4);
    let mut mlp = Mlp::new(&cpu, 8, 1).unwrap();
    let data: Vec<f32> = (0..18).map(|i| i as f32 / 9.0 - 1.0).collect();
    let x = Tensor::<Rank1<6>, Cpu>::from_slice(&cpu, 3, &data).unwrap();
    let y = mlp.forward(&x, Mode::Eval).unwrap();
    assert_eq!(y.batch(), 3);
    let y = y.to_vec(&cpu).unwrap();
    for row in y.chunks(4) {
        assert!(row.iter().all(|p| p.is_finite() && *p > 0.0));
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
    }
    // Host input goes through the same code.
    let host = mlp
        .forward_host(&data, Mode::Eval)
        .unwrap()
        .to_vec(&cpu)
        .unwrap();
    assert_eq!(host, y);
}

#[test]
fn rank_two_input_and_flatten_last() {
    assert_eq!(<Seq>::INPUT_SHAPE, Shape::new(&[4, 3]));
    assert_eq!(<Seq>::OUTPUT_SHAPE, Shape::new(&[12]));
    assert_eq!(<Seq>::LAYERS[0].name, "type");
    // The input, the output (which the sigmoid's backward reads), the output's
    // gradient, and the input's for `backward_to_input`, which takes the output
    // gradient's buffer.
    assert_eq!(<Seq>::WORKSPACE_FLOATS_PER_SAMPLE, 36);
    let cpu = cpu().unwrap();
    let mut seq = Seq::new(&cpu, 2, 0).unwrap();
    let x = Tensor::<Rank2<4, 3>, Cpu>::from_slice(&cpu, 1, &[0.0; 12]).unwrap();
    let y: Vec<f32> = seq.forward(&x, Mode::Eval).unwrap().to_vec(&cpu).unwrap();
    assert_eq!(y, [0.5; 12]);
    // The gradient passes `Flatten` to the only layer that runs, which gets `at`.
    let grad = Tensor::<Rank1<12>, Cpu>::from_slice(&cpu, 1, &[1.0; 12]).unwrap();
    seq.backward(&grad, GradAt::Output).unwrap();
    seq.backward(&grad, GradAt::PreActivation).unwrap();
}

#[test]
fn seed_cnn_forward_and_backward_on_a_small_batch() {
    let cpu = cpu().unwrap();
    let mut model = SeedCnn::new(&cpu, 4, 42).unwrap();
    let data: Vec<f32> = (0..2 * 3072)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let x = Tensor::<Rank3<32, 32, 3>, Cpu>::from_slice(&cpu, 2, &data).unwrap();
    let probabilities = model
        .forward(&x, Mode::Train)
        .unwrap()
        .to_vec(&cpu)
        .unwrap();
    assert_eq!(probabilities.len(), 20);
    for row in probabilities.chunks(10) {
        assert!(row.iter().all(|p| p.is_finite()));
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
    }

    // Softmax + cross-entropy: the gradient at the logits is p - y.
    let mut grad = probabilities.clone();
    grad[3] -= 1.0;
    grad[17] -= 1.0;
    let grad = Tensor::<Rank1<10>, Cpu>::from_slice(&cpu, 2, &grad).unwrap();
    model.zero_grad().unwrap();
    model.backward(&grad, GradAt::PreActivation).unwrap();
    let mut names = Vec::new();
    let mut nonzero = 0;
    model
        .parameters(&mut |p| {
            names.push(p.key());
            let g = cpu.to_host(p.grad, cpu.len(p.grad)).unwrap();
            assert!(g.iter().all(|v| v.is_finite()), "{}", p.key());
            nonzero += usize::from(g.iter().any(|v| *v != 0.0));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        names,
        [
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "conv3.weight",
            "conv3.bias",
            "fc1.weight",
            "fc1.bias",
            "out.weight",
            "out.bias"
        ]
    );
    assert!(nonzero >= 8, "only {nonzero} gradients are non-zero");
}

#[test]
fn same_seed_same_model() {
    let cpu = cpu().unwrap();
    let weights = |seed| {
        let model = Mlp::new(&cpu, 1, seed).unwrap();
        let mut all = Vec::new();
        model
            .parameters(&mut |p| {
                all.extend(cpu.to_host(p.value, cpu.len(p.value)).unwrap());
                Ok(())
            })
            .unwrap();
        all
    };
    assert_eq!(weights(5), weights(5));
    assert_ne!(weights(5), weights(6));
}

#[test]
fn run_time_errors_are_errors() {
    let cpu = cpu().unwrap();
    assert!(matches!(
        Mlp::new(&cpu, 0, 1),
        Err(Error::ZeroMaxBatch { model: "Mlp" })
    ));
    assert!(matches!(
        Mlp::new(&cpu, usize::MAX / 2, 1),
        Err(Error::MaxBatchTooLarge { model: "Mlp", .. })
    ));
    // Fits the address space, not the machine: an error, not an abort.
    let err = Mlp::new(&cpu, 1 << 40, 1).err().unwrap();
    assert!(err.to_string().contains("out of memory"), "{err}");
    let mut mlp = Mlp::new(&cpu, 2, 1).unwrap();
    let grad = Tensor::<Rank1<4>, Cpu>::from_slice(&cpu, 1, &[0.0; 4]).unwrap();
    assert!(matches!(
        mlp.backward(&grad, GradAt::Output),
        Err(Error::BackwardBeforeForward { .. })
    ));

    let x = Tensor::<Rank1<6>, Cpu>::from_slice(&cpu, 3, &[0.5; 18]).unwrap();
    assert!(matches!(
        mlp.forward(&x, Mode::Train),
        Err(Error::BatchTooLarge {
            model: "Mlp",
            batch: 3,
            max: 2
        })
    ));
    assert!(matches!(
        mlp.forward_host(&[0.5; 7], Mode::Train),
        Err(Error::InputLength { len: 7, .. })
    ));
    assert!(matches!(
        mlp.forward_host(&[], Mode::Train),
        Err(Error::EmptyBatch { .. })
    ));

    mlp.forward_host(&[0.5; 12], Mode::Train).unwrap();
    assert_eq!(mlp.output().batch(), 2);
    assert!(matches!(
        mlp.backward(&grad, GradAt::Output),
        Err(Error::BatchMismatch {
            forward: 2,
            backward: 1,
            ..
        })
    ));
}

#[test]
fn the_model_trait_reaches_the_generated_code() {
    fn parameters<M: Model<Cpu>>(model: &M) -> usize {
        let mut total = 0;
        model
            .parameters(&mut |p| {
                total += p.shape.size();
                Ok(())
            })
            .unwrap();
        total
    }
    let cpu = cpu().unwrap();
    let model = <Named as Model<Cpu>>::new(&cpu, 2, 0).unwrap();
    assert_eq!(parameters(&model), <Named>::PARAMETERS);
    assert_eq!(Model::max_batch(&model), 2);
}

/// Every parameter and its gradient, on the host, in visiting order.
fn params_and_grads(model: &Smooth, cpu: &Cpu) -> kiln::Result<Vec<(Vec<f32>, Vec<f32>)>> {
    let mut out = Vec::new();
    model.parameters(&mut |p| {
        let value = cpu.to_host(p.value, cpu.len(p.value))?;
        let grad = cpu.to_host(p.grad, cpu.len(p.grad))?;
        out.push((value, grad));
        Ok(())
    })?;
    Ok(out)
}

/// `sum(w * output)`, in f64.
fn weighted_output(model: &mut Smooth, x: &[f32], w: &[f32]) -> kiln::Result<f64> {
    let cpu = model.backend().clone();
    let y = model.forward_host(x, Mode::Eval)?.to_vec(&cpu)?;
    Ok(y.iter()
        .zip(w)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum())
}

#[test]
fn generated_backward_matches_finite_differences() {
    let cpu = cpu().unwrap();
    let mut model = Smooth::new(&cpu, 2, 3).unwrap();
    let x: Vec<f32> = (0..100)
        .map(|i| ((i * 37) % 23) as f32 / 11.0 - 1.0)
        .collect();
    let w = [0.3, -1.2, 0.7, 1.1, 0.4, -0.6];
    model.forward_host(&x, Mode::Train).unwrap();
    model.zero_grad().unwrap();
    let grad = Tensor::<Rank1<3>, Cpu>::from_slice(&cpu, 2, &w).unwrap();
    model.backward(&grad, GradAt::Output).unwrap();
    let analytic = params_and_grads(&model, &cpu).unwrap();

    let eps = 1e-2;
    let mut checked = 0;
    for (tensor, (values, grads)) in analytic.iter().enumerate() {
        for index in [0, values.len() / 2, values.len() - 1] {
            let mut probe = |delta: f32| {
                let mut seen = 0;
                model
                    .visit_parameters(&mut |p| {
                        if seen == tensor {
                            let mut v = values.clone();
                            v[index] += delta;
                            cpu.upload(&v, p.value)?;
                        }
                        seen += 1;
                        Ok(())
                    })
                    .unwrap();
                weighted_output(&mut model, &x, &w).unwrap()
            };
            let numeric = (probe(eps) - probe(-eps)) / (2.0 * f64::from(eps));
            probe(0.0);
            let exact = f64::from(grads[index]);
            assert!(
                (numeric - exact).abs() <= 2e-3 + 2e-2 * exact.abs(),
                "tensor {tensor}, element {index}: finite difference {numeric}, backward {exact}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * 6);
}

#[test]
fn pre_activation_gradient_skips_only_the_last_activation() {
    // Cross-entropy with labels y: dL/dp = -y / p at the output, p - y at the logits.
    // Both must give the same parameter gradients.
    let cpu = cpu().unwrap();
    let x: Vec<f32> = (0..100)
        .map(|i| ((i * 13) % 17) as f32 / 8.0 - 1.0)
        .collect();
    let labels = [0, 2];
    let run = |at: GradAt| {
        let mut model = Smooth::new(&cpu, 2, 9).unwrap();
        let p = model
            .forward_host(&x, Mode::Train)
            .unwrap()
            .to_vec(&cpu)
            .unwrap();
        let mut g = vec![0.0; 6];
        for (sample, &label) in labels.iter().enumerate() {
            for class in 0..3 {
                let i = sample * 3 + class;
                let y = if class == label { 1.0 } else { 0.0 };
                g[i] = match at {
                    GradAt::Output => -y / p[i],
                    GradAt::PreActivation => p[i] - y,
                };
            }
        }
        let g = Tensor::<Rank1<3>, Cpu>::from_slice(&cpu, 2, &g).unwrap();
        model.zero_grad().unwrap();
        model.backward(&g, at).unwrap();
        params_and_grads(&model, &cpu).unwrap()
    };
    let (output, logits) = (run(GradAt::Output), run(GradAt::PreActivation));
    for ((_, a), (_, b)) in output.iter().zip(&logits) {
        for (a, b) in a.iter().zip(b) {
            assert!((a - b).abs() <= 1e-4 + 1e-3 * a.abs(), "{a} vs {b}");
        }
    }
}

/// Every parameter gradient of a model, on the host, in visiting order.
fn gradients<M: Model<Cpu>>(model: &M, cpu: &Cpu) -> kiln::Result<Vec<Vec<f32>>> {
    let mut out = Vec::new();
    model.parameters(&mut |p| {
        out.push(cpu.to_host(p.grad, cpu.len(p.grad))?);
        Ok(())
    })?;
    Ok(out)
}

/// The outputs and parameter gradients of `model` for one batch.
type Run = (Vec<f32>, Vec<Vec<f32>>);

fn output_and_gradients<M>(model: &mut M) -> kiln::Result<Run>
where
    M: Model<Cpu, Input = Rank3<9, 8, 3>, Output = Rank1<3>>,
{
    let cpu = model.backend().clone();
    // Inputs around zero, so that the ReLU cuts many values and whole windows.
    let x: Vec<f32> = (0..3 * 9 * 8 * 3)
        .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let g: Vec<f32> = (0..3 * 3).map(|i| i as f32 / 4.0 - 1.0).collect();
    let x = Tensor::<Rank3<9, 8, 3>, Cpu>::from_slice(&cpu, 3, &x)?;
    let grad = Tensor::<Rank1<3>, Cpu>::from_slice(&cpu, 3, &g)?;
    let y = model.forward(&x, Mode::Train)?.to_vec(&cpu)?;
    model.zero_grad()?;
    model.backward(&grad, GradAt::Output)?;
    Ok((y, gradients(model, &cpu)?))
}

/// Copies `from`'s weights into `to`, which has the same parameters.
fn copy_weights<F: Model<Cpu>, T: Model<Cpu>>(from: &F, to: &mut T) -> kiln::Result<()> {
    let cpu = from.backend().clone();
    let mut weights = Vec::new();
    from.parameters(&mut |p| {
        weights.push(cpu.to_host(p.value, cpu.len(p.value))?);
        Ok(())
    })?;
    let mut next = weights.iter();
    to.visit_parameters(&mut |p| match next.next() {
        Some(w) => cpu.upload(w, p.value),
        None => Ok(()),
    })?;
    Ok(())
}

fn assert_same_run((y_fused, g_fused): Run, (y_apart, g_apart): Run) {
    assert_eq!(y_fused, y_apart);
    assert_eq!(g_fused.len(), g_apart.len());
    for (t, (f, a)) in g_fused.iter().zip(&g_apart).enumerate() {
        assert!(a.iter().any(|v| *v != 0.0), "tensor {t} has no gradient");
        for (i, (f, a)) in f.iter().zip(a).enumerate() {
            assert!(
                (f - a).abs() <= 1e-6 * (1.0 + a.abs()),
                "tensor {t}[{i}]: {f} vs {a}"
            );
        }
    }
}

#[test]
fn max_pooling_through_a_relu_gives_the_gradients_of_separate_passes() {
    let cpu = cpu().unwrap();
    let mut fused = PoolAfterRelu::new(&cpu, 3, 9).unwrap();
    let mut apart = PoolAfterReluApart::new(&cpu, 3, 9).unwrap();
    copy_weights(&fused, &mut apart).unwrap();
    assert_same_run(
        output_and_gradients(&mut fused).unwrap(),
        output_and_gradients(&mut apart).unwrap(),
    );
    let mut fused = PoolAfterReluLayer::new(&cpu, 3, 9).unwrap();
    let mut apart = PoolAfterReluLayerApart::new(&cpu, 3, 9).unwrap();
    copy_weights(&fused, &mut apart).unwrap();
    assert_same_run(
        output_and_gradients(&mut fused).unwrap(),
        output_and_gradients(&mut apart).unwrap(),
    );
}

kiln::model! {
    /// A model of 2.5 billion weights (10 GB): each tensor within what kernels
    /// index, the whole beyond the address space the test gives it.
    struct TooLarge {
        input: [50000],
        wide: Dense(50000),
    }
}

/// Set in the child process that builds `TooLarge` under a memory limit.
const TOO_LARGE_CHILD: &str = "KILN_TOO_LARGE_CHILD";

#[test]
fn weights_too_large_for_memory_are_an_error_naming_the_layer_and_the_size() {
    if std::env::var_os(TOO_LARGE_CHILD).is_some() {
        // The child: 4 GB of address space, as a machine too small for the model.
        let Err(err) = TooLarge::new(&Cpu::with_threads(1).unwrap(), 1, 0) else {
            panic!("10 GB of weights were allocated in 4 GB");
        };
        assert!(
            matches!(
                &err,
                Error::Build {
                    model: "TooLarge",
                    layer: "wide",
                    ..
                }
            ),
            "{err:?}"
        );
        println!("child: {err}");
        return;
    }
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4000000; exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args([
            "weights_too_large_for_memory_are_an_error_naming_the_layer_and_the_size",
            "--exact",
            "--nocapture",
        ])
        .env(TOO_LARGE_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("child: TooLarge: cannot build layer `wide`")
            && stdout.contains("2500000000 f32 values"),
        "{stdout}"
    );
}
