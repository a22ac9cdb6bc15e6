//! The sequence layers against PyTorch: forward values, input gradients and parameter
//! gradients of `Conv1d`, `MaxPool1d`, `GlobalAvgPool1d` and `GlobalMaxPool1d`.
//!
//! The expected values come from `oracle/pytorch_sequence.py` (kept beside the
//! generated `oracle/pytorch_sequence.rs`), which runs `nn.Conv1d`, `nn.MaxPool1d`
//! and mean / max over time on the CPU. kiln's sequences are NLC (Keras's order),
//! PyTorch's NCL: the script permutes the input, and turns kiln's `[kernel, in,
//! filters]` kernel into PyTorch's `[filters, in, kernel]`.

// The helpers are shared by the tests below; a failing call fails the test.
#![allow(clippy::unwrap_used)]

#[allow(clippy::excessive_precision)]
#[path = "oracle/pytorch_sequence.rs"]
mod pytorch_sequence;

use kiln_kernels::ops::InputGrad;
use kiln_kernels::rng::Rng;
use kiln_kernels::{Cpu, GradAt, ParamMut, Storage};
use kiln_nn::{Backward, Conv1d, GlobalPool1d, Layer, MaxPool1d, Mode};
use kiln_shape::{
    Activation, Conv1dSpec, GlobalPool1dSpec, MaxPool1dSpec, Padding, PoolMode, Shape, Spec,
};
use pytorch_sequence as pt;

/// `scale * f(freq * i + salt)` in f64, then f32: the script's data.
fn data(len: usize, scale: f64, freq: f64, salt: f64, f: fn(f64) -> f64) -> Vec<f32> {
    (0..len)
        .map(|i| (f(freq * i as f64 + salt) * scale) as f32)
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

/// What one case gives: `y`, `dx` and the parameter gradients by name.
struct Run {
    y: Vec<f32>,
    dx: Vec<f32>,
    grads: Vec<(&'static str, Vec<f32>)>,
}

/// Builds the layer for `spec` on the script's input of `x_shape` (batch first),
/// loads the script's parameters, runs forward and backward with its upstream
/// gradient.
fn run<L: Layer<Cpu>>(spec: L::Spec, x_shape: &[usize], y_shape: &[usize]) -> Run {
    let cpu = Cpu::with_threads(2).unwrap();
    let batch = x_shape[0];
    let sample = Shape::new(&x_shape[1..]);
    let out_shape = spec.output_shape(&sample).unwrap();
    assert_eq!(out_shape.dims(), &y_shape[1..], "output shape");
    let out = out_shape.size() * batch;
    let mut layer = L::build(&cpu, &spec, sample, batch, &mut Rng::new(0)).unwrap();
    layer
        .visit_parameters("layer", &mut |p: ParamMut<'_, Cpu>| {
            let salt = if p.name == "weight" { 2.0 } else { 3.0 };
            cpu.upload(&data(p.shape.size(), 0.5, 0.23, salt, f64::cos), p.value)?;
            Ok(())
        })
        .unwrap();
    layer.zero_grad(&cpu).unwrap();
    let x = cpu
        .alloc_from(&data(sample.size() * batch, 0.9, 0.37, 1.0, f64::sin))
        .unwrap();
    let mut y = cpu.alloc(out).unwrap();
    layer.forward(&cpu, &x, &mut y, batch, Mode::Train).unwrap();
    let mut dy = cpu
        .alloc_from(&data(out, 0.7, 0.41, 4.0, f64::sin))
        .unwrap();
    let mut dx = cpu
        .alloc_from(&vec![f32::NAN; sample.size() * batch])
        .unwrap();
    let pass = Backward {
        x: Some(&x),
        y: Some(&y),
        dy: &mut dy,
        dx: Some(InputGrad::write(&mut dx)),
        batch,
        at: GradAt::Output,
        through_relu_below: false,
    };
    layer.backward(&cpu, pass).unwrap();
    let mut grads = Vec::new();
    layer
        .visit_parameters("layer", &mut |p: ParamMut<'_, Cpu>| {
            grads.push((p.name, cpu.to_host(p.grad, p.shape.size())?));
            Ok(())
        })
        .unwrap();
    Run {
        y: cpu.to_host(&y, out).unwrap(),
        dx: cpu.to_host(&dx, sample.size() * batch).unwrap(),
        grads,
    }
}

#[allow(clippy::too_many_arguments)]
fn conv1d_case(
    what: &str,
    (x_shape, y_shape): (&[usize], &[usize]),
    (kernel, stride, dilation): (usize, usize, usize),
    padding: Padding,
    activation: Activation,
    want: [&[f32]; 4],
) {
    let spec = Conv1dSpec {
        filters: y_shape[2],
        kernel,
        stride,
        dilation,
        padding,
        activation,
    };
    let got = run::<Conv1d<Cpu>>(spec, x_shape, y_shape);
    let [y, dx, dw, db] = want;
    assert_close(&format!("{what}: y"), &got.y, y);
    assert_close(&format!("{what}: dx"), &got.dx, dx);
    assert_eq!(got.grads[0].0, "weight");
    assert_close(&format!("{what}: dweight"), &got.grads[0].1, dw);
    assert_eq!(got.grads[1].0, "bias");
    assert_close(&format!("{what}: dbias"), &got.grads[1].1, db);
}

#[test]
fn conv1d_matches_pytorch() {
    conv1d_case(
        "valid",
        (pt::CONV1D_VALID_X_SHAPE, pt::CONV1D_VALID_Y_SHAPE),
        (3, 1, 1),
        Padding::Valid,
        Activation::Linear,
        [
            pt::CONV1D_VALID_Y,
            pt::CONV1D_VALID_DX,
            pt::CONV1D_VALID_DW,
            pt::CONV1D_VALID_DB,
        ],
    );
    conv1d_case(
        "same, stride 2",
        (
            pt::CONV1D_SAME_STRIDE2_X_SHAPE,
            pt::CONV1D_SAME_STRIDE2_Y_SHAPE,
        ),
        (4, 2, 1),
        Padding::Same,
        Activation::Linear,
        [
            pt::CONV1D_SAME_STRIDE2_Y,
            pt::CONV1D_SAME_STRIDE2_DX,
            pt::CONV1D_SAME_STRIDE2_DW,
            pt::CONV1D_SAME_STRIDE2_DB,
        ],
    );
    conv1d_case(
        "causal, dilation 2, tanh",
        (
            pt::CONV1D_CAUSAL_DILATION2_TANH_X_SHAPE,
            pt::CONV1D_CAUSAL_DILATION2_TANH_Y_SHAPE,
        ),
        (3, 1, 2),
        Padding::Causal,
        Activation::Tanh,
        [
            pt::CONV1D_CAUSAL_DILATION2_TANH_Y,
            pt::CONV1D_CAUSAL_DILATION2_TANH_DX,
            pt::CONV1D_CAUSAL_DILATION2_TANH_DW,
            pt::CONV1D_CAUSAL_DILATION2_TANH_DB,
        ],
    );
    conv1d_case(
        "valid, dilation 3, stride 2",
        (
            pt::CONV1D_VALID_DILATION3_STRIDE2_X_SHAPE,
            pt::CONV1D_VALID_DILATION3_STRIDE2_Y_SHAPE,
        ),
        (3, 2, 3),
        Padding::Valid,
        Activation::Linear,
        [
            pt::CONV1D_VALID_DILATION3_STRIDE2_Y,
            pt::CONV1D_VALID_DILATION3_STRIDE2_DX,
            pt::CONV1D_VALID_DILATION3_STRIDE2_DW,
            pt::CONV1D_VALID_DILATION3_STRIDE2_DB,
        ],
    );
    conv1d_case(
        "same, dilation 2",
        (
            pt::CONV1D_SAME_DILATION2_X_SHAPE,
            pt::CONV1D_SAME_DILATION2_Y_SHAPE,
        ),
        (3, 1, 2),
        Padding::Same,
        Activation::Linear,
        [
            pt::CONV1D_SAME_DILATION2_Y,
            pt::CONV1D_SAME_DILATION2_DX,
            pt::CONV1D_SAME_DILATION2_DW,
            pt::CONV1D_SAME_DILATION2_DB,
        ],
    );
}

#[test]
fn max_pool1d_matches_pytorch() {
    let cases = [
        (
            "valid, 3 by 2",
            3,
            2,
            Padding::Valid,
            [
                pt::MAXPOOL1D_VALID_3_2_X_SHAPE,
                pt::MAXPOOL1D_VALID_3_2_Y_SHAPE,
            ],
            [pt::MAXPOOL1D_VALID_3_2_Y, pt::MAXPOOL1D_VALID_3_2_DX],
        ),
        (
            "same, 3 by 2",
            3,
            2,
            Padding::Same,
            [
                pt::MAXPOOL1D_SAME_3_2_X_SHAPE,
                pt::MAXPOOL1D_SAME_3_2_Y_SHAPE,
            ],
            [pt::MAXPOOL1D_SAME_3_2_Y, pt::MAXPOOL1D_SAME_3_2_DX],
        ),
        (
            "2",
            2,
            2,
            Padding::Valid,
            [pt::MAXPOOL1D_2_X_SHAPE, pt::MAXPOOL1D_2_Y_SHAPE],
            [pt::MAXPOOL1D_2_Y, pt::MAXPOOL1D_2_DX],
        ),
    ];
    for (what, size, stride, padding, [x_shape, y_shape], [y, dx]) in cases {
        let spec = MaxPool1dSpec {
            size,
            stride,
            padding,
        };
        let got = run::<MaxPool1d<Cpu>>(spec, x_shape, y_shape);
        assert_close(&format!("MaxPool1d {what}: y"), &got.y, y);
        assert_close(&format!("MaxPool1d {what}: dx"), &got.dx, dx);
    }
}

#[test]
fn global_pooling_over_time_matches_pytorch() {
    for (mode, x_shape, y_shape, y, dx) in [
        (
            PoolMode::Avg,
            pt::GLOBAL_AVG_POOL1D_X_SHAPE,
            pt::GLOBAL_AVG_POOL1D_Y_SHAPE,
            pt::GLOBAL_AVG_POOL1D_Y,
            pt::GLOBAL_AVG_POOL1D_DX,
        ),
        (
            PoolMode::Max,
            pt::GLOBAL_MAX_POOL1D_X_SHAPE,
            pt::GLOBAL_MAX_POOL1D_Y_SHAPE,
            pt::GLOBAL_MAX_POOL1D_Y,
            pt::GLOBAL_MAX_POOL1D_DX,
        ),
    ] {
        let got = run::<GlobalPool1d<Cpu>>(GlobalPool1dSpec { mode }, x_shape, y_shape);
        assert_close(&format!("{mode:?}: y"), &got.y, y);
        assert_close(&format!("{mode:?}: dx"), &got.dx, dx);
    }
}
