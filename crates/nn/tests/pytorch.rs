//! Forward values of the layers against PyTorch.
//!
//! The expected values come from `oracle/pytorch_layers.py` (kept beside the
//! generated `oracle/pytorch_layers.rs`), which runs the same cases through
//! `torch.nn.functional` on the CPU. kiln is NHWC with Keras kernel layouts; the
//! script converts: `x_nchw = x_nhwc.permute(0, 3, 1, 2)`, conv weight
//! `w_torch = w_kiln.permute(3, 2, 0, 1)`, dense weight `w_torch = w_kiln.T`, and
//! TensorFlow's `same` padding as an explicit `F.pad` before a `valid` op.

// The helpers are shared by the tests below; a failing call fails the test.
#![allow(clippy::unwrap_used)]

// Nine significant digits round-trip every f32 exactly; not every constant is used.
#[allow(dead_code, clippy::excessive_precision)]
#[path = "oracle/pytorch_layers.rs"]
mod pytorch_layers;

use kiln_kernels::ParamMut;
use kiln_kernels::ops::activation::{ActivationKernel, ActivationParams};
use kiln_kernels::rng::Rng;
use kiln_kernels::{Cpu, Storage};
use kiln_nn::{ActivationLayer, Conv2d, Dense, GlobalAvgPool2d, Layer, Mode, Pool2d};
use kiln_shape::{
    Activation, Conv2dSpec, DenseSpec, GlobalAvgPool2dSpec, Padding, Pool2dSpec, PoolMode, Shape,
    Spec,
};
use pytorch_layers as pt;

/// The script's inputs: `sin(0.37 i + salt) * 0.9`, in f64, then f32.
fn input(len: usize, salt: f64) -> Vec<f32> {
    (0..len)
        .map(|i| ((0.37 * i as f64 + salt).sin() * 0.9) as f32)
        .collect()
}

/// The script's parameters: `cos(0.23 i + salt) * 0.5`.
fn param(len: usize, salt: f64) -> Vec<f32> {
    (0..len)
        .map(|i| ((0.23 * i as f64 + salt).cos() * 0.5) as f32)
        .collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 2e-5 * (1.0 + w.abs()),
            "{what}[{i}]: kiln {g}, PyTorch {w}"
        );
    }
}

/// Builds the layer for `spec` on samples of `x_shape[1..]`, loads the script's
/// weight and bias, and runs it forward on the script's input.
fn run<L: Layer<Cpu>>(spec: L::Spec, x_shape: &[usize], x_head: &[f32]) -> Vec<f32> {
    let cpu = Cpu::with_threads(2).unwrap();
    let batch = x_shape[0];
    let sample = Shape::new(&x_shape[1..]);
    let out = spec.output_shape(&sample).unwrap().size() * batch;
    let mut layer = L::build(&cpu, &spec, sample, batch, &mut Rng::new(0)).unwrap();
    layer
        .visit_parameters("layer", &mut |p: ParamMut<'_, Cpu>| {
            let salt = if p.name == "weight" { 2.0 } else { 3.0 };
            cpu.upload(&param(p.shape.size(), salt), p.value)?;
            Ok(())
        })
        .unwrap();
    let x = input(sample.size() * batch, 1.0);
    assert_eq!(&x[..3], x_head, "the inputs are not the script's");
    let xb = cpu.alloc_from(&x).unwrap();
    let mut y = cpu.alloc(out).unwrap();
    layer.forward(&cpu, &xb, &mut y, batch, Mode::Eval).unwrap();
    cpu.to_host(&y, out).unwrap()
}

#[test]
fn dense_matches_pytorch() {
    assert_eq!(&param(3, 2.0)[..], pt::DENSE_W_HEAD);
    assert_eq!(&param(3, 3.0)[..], pt::DENSE_B_HEAD);
    let spec = DenseSpec {
        units: pt::DENSE_W_SHAPE[1],
        activation: Activation::Linear,
    };
    let y = run::<Dense<Cpu>>(spec, pt::DENSE_X_SHAPE, pt::DENSE_X_HEAD);
    assert_close("dense", &y, pt::DENSE_OUT);
}

fn conv_spec(w_shape: &[usize], stride: usize, padding: Padding) -> Conv2dSpec {
    Conv2dSpec {
        filters: w_shape[3],
        kernel: (w_shape[0], w_shape[1]),
        stride: (stride, stride),
        padding,
        activation: Activation::Linear,
    }
}

#[test]
fn conv2d_matches_pytorch() {
    let cases = [
        (
            "valid",
            pt::CONV2D_VALID_X_SHAPE,
            pt::CONV2D_VALID_X_HEAD,
            pt::CONV2D_VALID_W_SHAPE,
            1,
            Padding::Valid,
            pt::CONV2D_VALID_OUT,
        ),
        (
            "same",
            pt::CONV2D_SAME_X_SHAPE,
            pt::CONV2D_SAME_X_HEAD,
            pt::CONV2D_SAME_W_SHAPE,
            1,
            Padding::Same,
            pt::CONV2D_SAME_OUT,
        ),
        (
            "same stride 2",
            pt::CONV2D_SAME_STRIDE2_X_SHAPE,
            pt::CONV2D_SAME_STRIDE2_X_HEAD,
            pt::CONV2D_SAME_STRIDE2_W_SHAPE,
            2,
            Padding::Same,
            pt::CONV2D_SAME_STRIDE2_OUT,
        ),
        (
            "valid stride 2, 2x3 kernel",
            pt::CONV2D_VALID_STRIDE2_K2X3_X_SHAPE,
            pt::CONV2D_VALID_STRIDE2_K2X3_X_HEAD,
            pt::CONV2D_VALID_STRIDE2_K2X3_W_SHAPE,
            2,
            Padding::Valid,
            pt::CONV2D_VALID_STRIDE2_K2X3_OUT,
        ),
    ];
    for (what, x_shape, x_head, w_shape, stride, padding, want) in cases {
        let y = run::<Conv2d<Cpu>>(conv_spec(w_shape, stride, padding), x_shape, x_head);
        assert_close(what, &y, want);
    }
}

#[test]
fn pooling_matches_pytorch() {
    let pool = |mode, size: usize, stride: usize, padding| Pool2dSpec {
        mode,
        size: (size, size),
        stride: (stride, stride),
        padding,
    };
    let cases = [
        (
            "max valid",
            pool(PoolMode::Max, 2, 2, Padding::Valid),
            pt::MAXPOOL2D_VALID_X_SHAPE,
            pt::MAXPOOL2D_VALID_X_HEAD,
            pt::MAXPOOL2D_VALID_OUT,
        ),
        (
            "max same",
            pool(PoolMode::Max, 2, 2, Padding::Same),
            pt::MAXPOOL2D_SAME_X_SHAPE,
            pt::MAXPOOL2D_SAME_X_HEAD,
            pt::MAXPOOL2D_SAME_OUT,
        ),
        (
            "avg valid",
            pool(PoolMode::Avg, 2, 2, Padding::Valid),
            pt::AVGPOOL2D_VALID_X_SHAPE,
            pt::AVGPOOL2D_VALID_X_HEAD,
            pt::AVGPOOL2D_VALID_OUT,
        ),
        (
            "avg same",
            pool(PoolMode::Avg, 3, 2, Padding::Same),
            pt::AVGPOOL2D_SAME_X_SHAPE,
            pt::AVGPOOL2D_SAME_X_HEAD,
            pt::AVGPOOL2D_SAME_OUT,
        ),
    ];
    for (what, spec, x_shape, x_head, want) in cases {
        assert_close(what, &run::<Pool2d<Cpu>>(spec, x_shape, x_head), want);
    }
    let y = run::<GlobalAvgPool2d<Cpu>>(
        GlobalAvgPool2dSpec,
        pt::GLOBAL_AVG_POOL_X_SHAPE,
        pt::GLOBAL_AVG_POOL_X_HEAD,
    );
    assert_close("global average", &y, pt::GLOBAL_AVG_POOL_OUT);
}

#[test]
fn softmax_matches_pytorch_at_large_logits() {
    let cpu = Cpu::with_threads(1).unwrap();
    let (rows, cols) = (pt::SOFTMAX_X_SHAPE[0], pt::SOFTMAX_X_SHAPE[1]);
    let mut x = input(rows * cols, 1.0);
    // The script scales row 1 by 100 (in f32) to test stability.
    for v in &mut x[cols..2 * cols] {
        *v *= 100.0;
    }
    assert_eq!(&x[cols..cols + 3], pt::SOFTMAX_X_ROW1_HEAD);
    let y = run_activation(&cpu, Activation::Softmax, &x, rows, cols);
    assert_close("softmax", &y, pt::SOFTMAX_OUT);
}

fn run_activation(cpu: &Cpu, act: Activation, x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let p = ActivationParams::new(act, rows, cols).unwrap();
    let mut y = cpu.alloc_from(x).unwrap();
    cpu.activation_fwd_inplace(&p, &mut y).unwrap();
    cpu.to_host(&y, x.len()).unwrap()
}

#[test]
fn activations_match_pytorch() {
    let cpu = Cpu::with_threads(1).unwrap();
    let x = pt::LINSPACE_X;
    let n = x.len();
    for (act, want) in [
        (Activation::Gelu, pt::GELU_LINSPACE_OUT),
        (Activation::Sigmoid, pt::SIGMOID_LINSPACE_OUT),
        (Activation::Tanh, pt::TANH_LINSPACE_OUT),
        (Activation::Relu, pt::RELU_LINSPACE_OUT),
        (
            Activation::LeakyRelu {
                negative_slope: 0.2,
            },
            pt::LEAKY_RELU_LINSPACE_OUT,
        ),
    ] {
        assert_close(act.name(), &run_activation(&cpu, act, x, 1, n), want);
    }
    // GELU as a layer of its own, on the script's [2, 6] input.
    let y = run::<ActivationLayer>(Activation::Gelu, pt::GELU_X_SHAPE, pt::GELU_X_HEAD);
    assert_close("gelu layer", &y, pt::GELU_OUT);
}
