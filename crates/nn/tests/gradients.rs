//! Every layer's backward pass (input and parameter gradients) against central finite
//! differences of `L = sum(y * u)` for a fixed random `u`, at several shapes.

// The harness is shared by the tests below; a failing call fails the test.
#![allow(clippy::unwrap_used)]

use kiln_kernels::ops::InputGrad;
use kiln_kernels::rng::Rng;
use kiln_kernels::{Cpu, CpuBuffer, GradAt, ParamMut, Storage};
use kiln_nn::{
    ActivationLayer, Backward, BatchNorm, Conv1d, Conv2d, Dense, Dropout, Error, Flatten,
    GlobalAvgPool2d, GlobalPool1d, Identity, Layer, MaxPool1d, Mode, Pool2d,
};
use kiln_shape::{
    Activation, BatchNormSpec, Conv1dSpec, Conv2dSpec, DenseSpec, DropoutSpec, FlattenSpec,
    GlobalAvgPool2dSpec, GlobalPool1dSpec, IdentitySpec, MaxPool1dSpec, Padding, Pool2dSpec,
    PoolMode, Shape, Spec,
};

// Small enough that no tested point crosses a ReLU or max-pool kink with these seeds,
// large enough that f32 rounding stays far below the tolerance.
const STEP: f32 = 2e-3;

fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.uniform_in(-1.0, 1.0)).collect()
}

struct Case<L> {
    cpu: Cpu,
    layer: L,
    x: Vec<f32>,
    u: Vec<f32>,
    batch: usize,
    out_len: usize,
    /// Whether the kind says that its backward pass can add to an input gradient.
    accumulates: bool,
}

impl<L: Layer<Cpu>> Case<L> {
    fn new(spec: L::Spec, input: Shape, batch: usize, seed: u64) -> Self {
        let cpu = Cpu::with_threads(2).unwrap();
        let mut rng = Rng::new(seed);
        let mut layer = L::build(&cpu, &spec, input, batch, &mut rng).unwrap();
        // Non-zero biases, so that their gradient path is exercised on a generic point.
        layer
            .visit_parameters("layer", &mut |p: ParamMut<'_, Cpu>| {
                let len = p.shape.size();
                let values = random(&mut Rng::new(len as u64), len);
                cpu.upload(&values, p.value)?;
                Ok(())
            })
            .unwrap();
        let out_len = spec.output_shape(&input).unwrap().size() * batch;
        let x = random(&mut rng, input.size() * batch);
        let u = random(&mut rng, out_len);
        Self {
            cpu,
            layer,
            x,
            u,
            batch,
            out_len,
            accumulates: spec.traits().accumulates_input_grad,
        }
    }

    fn forward(&mut self, x: &[f32]) -> Vec<f32> {
        let xb = self.cpu.alloc_from(x).unwrap();
        let mut y = self.cpu.alloc(self.out_len).unwrap();
        self.layer
            .forward(&self.cpu, &xb, &mut y, self.batch, Mode::Train)
            .unwrap();
        self.cpu.to_host(&y, self.out_len).unwrap()
    }

    fn loss(&mut self, x: &[f32]) -> f64 {
        let y = self.forward(x);
        y.iter()
            .zip(&self.u)
            .map(|(y, u)| f64::from(*y) * f64::from(*u))
            .sum()
    }

    /// Analytic gradients: (dx, [(name, grad)]). With `add_to`, the input gradient is
    /// added to those values instead of written.
    fn backward(&mut self, add_to: Option<&[f32]>) -> (Vec<f32>, Vec<(String, Vec<f32>)>) {
        let cpu = self.cpu.clone();
        let xb: CpuBuffer = cpu.alloc_from(&self.x).unwrap();
        let mut y = cpu.alloc(self.out_len).unwrap();
        // Stale gradients, which `zero_grad` must clear before the pass accumulates.
        self.layer
            .visit_parameters("layer", &mut |p: ParamMut<'_, Cpu>| {
                cpu.fill(p.grad, p.shape.size(), 7.0)?;
                Ok(())
            })
            .unwrap();
        self.layer.zero_grad(&cpu).unwrap();
        self.layer
            .forward(&cpu, &xb, &mut y, self.batch, Mode::Train)
            .unwrap();
        let mut dy = cpu.alloc_from(&self.u).unwrap();
        let mut dx = match add_to {
            Some(start) => cpu.alloc_from(start).unwrap(),
            None => cpu.alloc_from(&vec![f32::NAN; self.x.len()]).unwrap(),
        };
        let pass = Backward {
            x: Some(&xb),
            y: Some(&y),
            dy: &mut dy,
            dx: Some(InputGrad {
                buffer: &mut dx,
                accumulate: add_to.is_some(),
            }),
            batch: self.batch,
            at: GradAt::Output,
            through_relu_below: false,
        };
        self.layer.backward(&cpu, pass).unwrap();
        let mut grads = Vec::new();
        self.layer
            .visit_parameters("layer", &mut |p: ParamMut<'_, Cpu>| {
                grads.push((p.name.to_string(), cpu.to_host(p.grad, p.shape.size())?));
                Ok(())
            })
            .unwrap();
        (cpu.to_host(&dx, self.x.len()).unwrap(), grads)
    }

    fn perturb_param(&mut self, name: &str, i: usize, delta: f32) {
        let cpu = self.cpu.clone();
        self.layer
            .visit_parameters("layer", &mut |p: ParamMut<'_, Cpu>| {
                if p.name == name {
                    let mut v = cpu.to_host(p.value, p.shape.size())?;
                    v[i] += delta;
                    cpu.upload(&v, p.value)?;
                }
                Ok(())
            })
            .unwrap();
    }

    fn check(mut self, what: &str) {
        let (dx, grads) = self.backward(None);
        if self.accumulates {
            // Added to a gradient that is there already, the same values (up to the
            // rounding of the sum) and the same parameter gradients.
            let start = random(&mut Rng::new(99), self.x.len());
            let (sum, grads_again) = self.backward(Some(&start));
            for (i, ((s, d), a)) in sum.iter().zip(&dx).zip(&start).enumerate() {
                assert!(
                    (s - (d + a)).abs() <= 1e-5 * (1.0 + s.abs()),
                    "{what}: accumulated dx[{i}] = {s}, expected {a} + {d}"
                );
            }
            assert_eq!(grads, grads_again, "{what}: parameter gradients");
        }
        let x = self.x.clone();
        let close = |analytic: f32, numeric: f64| {
            (f64::from(analytic) - numeric).abs() <= 2e-2 * (1.0 + numeric.abs())
        };
        let mut kinks = 0;
        let mut checked = 0;
        let stride = (x.len() / 40).max(1);
        for i in (0..x.len()).step_by(stride) {
            let mut numeric_at = |h: f32| {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[i] += h;
                xm[i] -= h;
                (self.loss(&xp) - self.loss(&xm)) / (2.0 * f64::from(h))
            };
            let (numeric, half) = (numeric_at(STEP), numeric_at(STEP / 2.0));
            checked += 1;
            if !close(half as f32, numeric) {
                // A ReLU or max-pool kink lies within the step: the difference quotient
                // is meaningless there.
                kinks += 1;
                continue;
            }
            assert!(
                close(dx[i], numeric),
                "{what}: dx[{i}] = {} but finite differences give {numeric}",
                dx[i]
            );
        }
        for (name, grad) in grads {
            let stride = (grad.len() / 30).max(1);
            for i in (0..grad.len()).step_by(stride) {
                let mut numeric_at = |h: f32| {
                    self.perturb_param(&name, i, h);
                    let plus = self.loss(&x);
                    self.perturb_param(&name, i, -2.0 * h);
                    let minus = self.loss(&x);
                    self.perturb_param(&name, i, h);
                    (plus - minus) / (2.0 * f64::from(h))
                };
                let (numeric, half) = (numeric_at(STEP), numeric_at(STEP / 2.0));
                checked += 1;
                if !close(half as f32, numeric) {
                    kinks += 1;
                    continue;
                }
                assert!(
                    close(grad[i], numeric),
                    "{what}: d{name}[{i}] = {} but finite differences give {numeric}",
                    grad[i]
                );
            }
        }
        // A wrong gradient fails `close` at smooth points; only a few points may be kinks
        // (one pre-activation near zero spoils a whole column of a small layer).
        assert!(
            kinks * 4 <= checked,
            "{what}: {kinks} of {checked} points sit on a kink"
        );
    }
}

fn conv(
    filters: usize,
    kernel: (usize, usize),
    stride: usize,
    padding: Padding,
    activation: Activation,
) -> Conv2dSpec {
    Conv2dSpec {
        filters,
        kernel,
        stride: (stride, stride),
        padding,
        activation,
    }
}

#[test]
fn dense_gradients() {
    for (input, units, act, batch) in [
        (5, 4, Activation::Linear, 3),
        (7, 3, Activation::Tanh, 2),
        (6, 5, Activation::Softmax, 4),
        (4, 6, Activation::Gelu, 3),
        (9, 2, Activation::Sigmoid, 1),
        (
            3,
            4,
            Activation::LeakyRelu {
                negative_slope: 0.2,
            },
            5,
        ),
    ] {
        let spec = DenseSpec {
            units,
            activation: act,
        };
        Case::<Dense<Cpu>>::new(spec, Shape::new(&[input]), batch, 1)
            .check(&format!("Dense({units}, {act:?}) on [{input}]"));
    }
}

#[test]
fn conv2d_gradients() {
    for (input, spec, batch) in [
        (
            [5usize, 6, 3],
            conv(4, (3, 3), 1, Padding::Valid, Activation::Linear),
            2,
        ),
        (
            [5, 5, 2],
            conv(3, (3, 3), 1, Padding::Same, Activation::Tanh),
            2,
        ),
        (
            [7, 6, 3],
            conv(4, (3, 3), 2, Padding::Same, Activation::Linear),
            2,
        ),
        (
            [7, 7, 2],
            conv(2, (2, 3), 2, Padding::Valid, Activation::Sigmoid),
            1,
        ),
        (
            [6, 5, 1],
            conv(3, (4, 4), 3, Padding::Same, Activation::Gelu),
            3,
        ),
    ] {
        Case::<Conv2d<Cpu>>::new(spec, Shape::new(&input), batch, 2)
            .check(&format!("{spec:?} on {input:?}"));
    }
}

#[test]
fn conv2d_relu_gradients() {
    // ReLU's kink: with this seed no value lies within the finite-difference step of 0.
    let spec = conv(3, (3, 3), 1, Padding::Same, Activation::Relu);
    Case::<Conv2d<Cpu>>::new(spec, Shape::new(&[5, 5, 2]), 2, 3).check("Conv2d relu");
}

#[test]
fn pooling_gradients() {
    for (kind, size, stride, padding, input) in [
        ("max", 2, 2, Padding::Valid, [6, 6, 3]),
        ("max", 3, 2, Padding::Same, [7, 5, 2]),
        ("avg", 2, 2, Padding::Valid, [5, 7, 2]),
        ("avg", 3, 2, Padding::Same, [7, 7, 3]),
        ("avg", 3, 1, Padding::Valid, [5, 5, 1]),
    ] {
        let spec = Pool2dSpec {
            mode: if kind == "max" {
                PoolMode::Max
            } else {
                PoolMode::Avg
            },
            size: (size, size),
            stride: (stride, stride),
            padding,
        };
        Case::<Pool2d<Cpu>>::new(spec, Shape::new(&input), 2, 4)
            .check(&format!("{spec:?} on {input:?}"));
    }
    Case::<GlobalAvgPool2d<Cpu>>::new(GlobalAvgPool2dSpec, Shape::new(&[3, 5, 4]), 2, 5)
        .check("GlobalAvgPool2d");
}

#[test]
fn conv1d_gradients() {
    // (time, features), filters, kernel, stride, dilation, padding, activation, batch
    for (input, filters, kernel, stride, dilation, padding, activation, batch) in [
        ([9, 3], 4, 3, 1, 1, Padding::Valid, Activation::Linear, 2),
        ([10, 2], 3, 4, 2, 1, Padding::Same, Activation::Tanh, 2),
        ([11, 3], 2, 3, 1, 2, Padding::Causal, Activation::Sigmoid, 3),
        ([16, 2], 3, 3, 2, 3, Padding::Valid, Activation::Gelu, 2),
        ([7, 4], 2, 2, 3, 2, Padding::Same, Activation::Linear, 1),
        ([12, 2], 3, 5, 1, 1, Padding::Causal, Activation::Relu, 2),
    ] {
        let spec = Conv1dSpec {
            filters,
            kernel,
            stride,
            dilation,
            padding,
            activation,
        };
        Case::<Conv1d<Cpu>>::new(spec, Shape::new(&input), batch, 10)
            .check(&format!("{spec:?} on {input:?}"));
    }
}

#[test]
fn pooling_over_time_gradients() {
    for (size, stride, padding, input) in [
        (3, 2, Padding::Valid, [9, 3]),
        (3, 2, Padding::Same, [8, 2]),
        (2, 2, Padding::Valid, [8, 3]),
        (4, 1, Padding::Same, [6, 2]),
    ] {
        let spec = MaxPool1dSpec {
            size,
            stride,
            padding,
        };
        Case::<MaxPool1d<Cpu>>::new(spec, Shape::new(&input), 2, 11)
            .check(&format!("{spec:?} on {input:?}"));
    }
    for mode in [PoolMode::Avg, PoolMode::Max] {
        Case::<GlobalPool1d<Cpu>>::new(GlobalPool1dSpec { mode }, Shape::new(&[7, 4]), 3, 12)
            .check(&format!("global {mode:?} over time"));
    }
}

#[test]
fn activation_layer_gradients() {
    for act in [
        Activation::Relu,
        Activation::LeakyRelu {
            negative_slope: 0.3,
        },
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::Softmax,
    ] {
        Case::<ActivationLayer>::new(act, Shape::new(&[3, 7]), 3, 6).check(&format!("{act:?}"));
    }
}

#[test]
fn batch_norm_gradients() {
    // Training mode: the batch's statistics depend on every input, so each input's
    // gradient goes through the mean and the variance too.
    for (input, batch, spec) in [
        (&[3usize, 4, 5][..], 2, BatchNormSpec::KERAS),
        (&[6][..], 4, BatchNormSpec::PYTORCH),
        (
            &[2, 2, 3][..],
            3,
            BatchNormSpec {
                activation: Activation::Tanh,
                ..BatchNormSpec::KERAS
            },
        ),
        (
            &[5][..],
            3,
            BatchNormSpec {
                activation: Activation::Gelu,
                ..BatchNormSpec::PYTORCH
            },
        ),
    ] {
        Case::<BatchNorm<Cpu>>::new(spec, Shape::new(input), batch, 9)
            .check(&format!("BatchNorm({:?}) on {input:?}", spec.activation));
    }
}

#[test]
fn flatten_passes_gradients_through() {
    Case::<Flatten>::new(FlattenSpec, Shape::new(&[2, 3, 4]), 2, 7).check("Flatten");
    Case::<Identity>::new(IdentitySpec, Shape::new(&[3, 4]), 2, 8).check("Identity");
}

#[test]
fn dropout_backward_replays_the_forward_mask() {
    let cpu = Cpu::with_threads(2).unwrap();
    let spec = DropoutSpec { rate: 0.4 };
    let shape = Shape::new(&[50]);
    let mut layer = Dropout::build(&cpu, &spec, shape, 8, &mut Rng::new(1)).unwrap();
    let x = cpu.alloc_from(&[1.0; 400]).unwrap();
    let mut y = cpu.alloc(400).unwrap();
    Layer::<Cpu>::forward(&mut layer, &cpu, &x, &mut y, 8, Mode::Train).unwrap();
    let mut dy = cpu.alloc_from(&[1.0; 400]).unwrap();
    let mut dx = cpu.alloc(400).unwrap();
    let pass = Backward {
        x: None,
        y: None,
        dy: &mut dy,
        dx: Some(InputGrad::write(&mut dx)),
        batch: 8,
        at: GradAt::Output,
        through_relu_below: false,
    };
    Layer::<Cpu>::backward(&mut layer, &cpu, pass).unwrap();
    let (y, dx) = (
        cpu.to_host(&y, 400).unwrap(),
        cpu.to_host(&dx, 400).unwrap(),
    );
    // For x = 1 and dy = 1 both are the mask divided by (1 - rate).
    assert_eq!(y, dx);
    let dropped = y.iter().filter(|v| **v == 0.0).count();
    assert!(
        (120..200).contains(&dropped),
        "{dropped} of 400 dropped at rate 0.4"
    );
    // A second training forward draws a new mask; inference is the identity.
    let mut y2 = cpu.alloc(400).unwrap();
    Layer::<Cpu>::forward(&mut layer, &cpu, &x, &mut y2, 8, Mode::Train).unwrap();
    assert_ne!(cpu.to_host(&y2, 400).unwrap(), y);
    Layer::<Cpu>::forward(&mut layer, &cpu, &x, &mut y2, 8, Mode::Eval).unwrap();
    assert_eq!(cpu.to_host(&y2, 400).unwrap(), vec![1.0; 400]);
}

#[test]
fn building_from_a_bad_spec_is_an_error() {
    let cpu = Cpu::with_threads(1).unwrap();
    let dense = DenseSpec {
        units: 4,
        activation: Activation::Relu,
    };
    let err =
        Dense::<Cpu>::build(&cpu, &dense, Shape::new(&[2, 2, 3]), 4, &mut Rng::new(0)).unwrap_err();
    assert!(
        err.to_string()
            .contains("Dense expects a rank-1 input but gets [2, 2, 3]"),
        "{err}"
    );
    let zero = DenseSpec {
        units: 0,
        activation: Activation::Relu,
    };
    let err = Dense::<Cpu>::build(&cpu, &zero, Shape::new(&[3]), 4, &mut Rng::new(0)).unwrap_err();
    assert_eq!(err.to_string(), "Dense: `units` must be at least 1, got 0");
}

#[test]
fn a_backward_pass_without_what_it_reads_is_an_error() {
    let cpu = Cpu::with_threads(1).unwrap();
    let spec = DenseSpec {
        units: 2,
        activation: Activation::Tanh,
    };
    let mut dense =
        Dense::<Cpu>::build(&cpu, &spec, Shape::new(&[3]), 1, &mut Rng::new(0)).unwrap();
    let x = cpu.alloc(3).unwrap();
    let mut dy = cpu.alloc(2).unwrap();
    let pass = Backward {
        x: Some(&x),
        y: None,
        dy: &mut dy,
        dx: None,
        batch: 1,
        at: GradAt::Output,
        through_relu_below: false,
    };
    let err = dense.backward(&cpu, pass).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotKept {
                layer: "Dense",
                value: "output"
            }
        ),
        "{err}"
    );
    // Max pooling overwrites its input gradient, as its traits say.
    let pool = Pool2dSpec {
        mode: PoolMode::Max,
        size: (2, 2),
        stride: (2, 2),
        padding: Padding::Valid,
    };
    assert!(!pool.traits().accumulates_input_grad);
    let mut layer =
        Pool2d::<Cpu>::build(&cpu, &pool, Shape::new(&[2, 2, 1]), 1, &mut Rng::new(0)).unwrap();
    let (x, y) = (cpu.alloc(4).unwrap(), cpu.alloc(1).unwrap());
    let (mut dy, mut dx) = (cpu.alloc(1).unwrap(), cpu.alloc(4).unwrap());
    let pass = Backward {
        x: Some(&x),
        y: Some(&y),
        dy: &mut dy,
        dx: Some(InputGrad::add_to(&mut dx)),
        batch: 1,
        at: GradAt::Output,
        through_relu_below: false,
    };
    let err = layer.backward(&cpu, pass).unwrap_err();
    assert!(
        matches!(err, Error::CannotAccumulate { layer: "MaxPool2d" }),
        "{err}"
    );
}
