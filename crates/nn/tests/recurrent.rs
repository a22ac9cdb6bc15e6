//! `Embedding`, `Lstm`, `Gru`, `SimpleRnn` and `TimeDense`: gradients against central finite
//! differences, and values and gradients against PyTorch with the same weights
//! (`oracle/pytorch_recurrent.py` wrote the expected numbers).

#![allow(clippy::unwrap_used)]

#[path = "oracle/pytorch_recurrent.rs"]
mod oracle;

use kiln_kernels::ops::InputGrad;
use kiln_kernels::rng::Rng;
use kiln_kernels::{Cpu, CpuBuffer, Error as KernelError, GradAt, ParamMut, Storage};
use kiln_nn::{
    Backward, Embedding, Error, Layer, Mode, Recurrent, TimeDense, weights_from_pytorch,
};
use kiln_shape::{Activation, Cell, EmbeddingSpec, RecurrentSpec, Shape, Spec, TimeDenseSpec};

fn sequence(n: usize, freq: f64, salt: f64, scale: f64, f: fn(f64) -> f64) -> Vec<f32> {
    (0..n)
        .map(|i| (f(freq * i as f64 + salt) * scale) as f32)
        .collect()
}

/// A layer, its input and output gradient, run forward and back on the CPU.
struct Run<L> {
    cpu: Cpu,
    layer: L,
    batch: usize,
    out_len: usize,
}

impl<L: Layer<Cpu>> Run<L> {
    fn new(spec: &L::Spec, input: Shape, batch: usize) -> Self {
        let cpu = Cpu::with_threads(2).unwrap();
        let layer = L::build(&cpu, spec, input, batch, &mut Rng::new(3)).unwrap();
        let out_len = spec.output_for(&input).unwrap().size() * batch;
        Self {
            cpu,
            layer,
            batch,
            out_len,
        }
    }

    fn set(&mut self, name: &str, values: &[f32]) {
        let cpu = self.cpu.clone();
        self.layer
            .visit_parameters("layer", &mut |p: ParamMut<'_, Cpu>| {
                if p.name == name {
                    cpu.upload(values, p.value)?;
                }
                Ok(())
            })
            .unwrap();
    }

    fn forward(&mut self, x: &[f32]) -> Vec<f32> {
        let xb = self.cpu.alloc_from(x).unwrap();
        let mut y = self.cpu.alloc(self.out_len).unwrap();
        self.layer
            .forward(&self.cpu, &xb, &mut y, self.batch, Mode::Train)
            .unwrap();
        self.cpu.to_host(&y, self.out_len).unwrap()
    }

    /// `sum(y * u)` in `f64`.
    fn loss(&mut self, x: &[f32], u: &[f32]) -> f64 {
        let y = self.forward(x);
        y.iter()
            .zip(u)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum()
    }

    /// `(y, dx, [(name, gradient)])` of `sum(y * u)`.
    fn gradients(&mut self, x: &[f32], u: &[f32]) -> Gradients {
        let cpu = self.cpu.clone();
        self.layer.zero_grad(&cpu).unwrap();
        let xb: CpuBuffer = cpu.alloc_from(x).unwrap();
        let mut y = cpu.alloc(self.out_len).unwrap();
        self.layer
            .forward(&cpu, &xb, &mut y, self.batch, Mode::Train)
            .unwrap();
        let mut dy = cpu.alloc_from(u).unwrap();
        let mut dx = cpu.alloc_from(&vec![f32::NAN; x.len()]).unwrap();
        let pass = Backward {
            x: Some(&xb),
            y: Some(&y),
            dy: &mut dy,
            dx: Some(InputGrad::write(&mut dx)),
            batch: self.batch,
            at: GradAt::Output,
            through_relu_below: false,
        };
        self.layer.backward(&cpu, pass).unwrap();
        let mut grads = Vec::new();
        self.layer
            .parameters("layer", &mut |p| {
                grads.push((p.name.to_string(), cpu.to_host(p.grad, p.shape.size())?));
                Ok(())
            })
            .unwrap();
        (
            cpu.to_host(&y, self.out_len).unwrap(),
            cpu.to_host(&dx, x.len()).unwrap(),
            grads,
        )
    }

    fn parameter(&self, name: &str) -> Vec<f32> {
        let mut out = Vec::new();
        self.layer
            .parameters("layer", &mut |p| {
                if p.name == name {
                    out = self.cpu.to_host(p.value, p.shape.size())?;
                }
                Ok(())
            })
            .unwrap();
        out
    }
}

const STEP: f32 = 1e-2;

/// The output, the input gradient, and each parameter's name and gradient.
type Gradients = (Vec<f32>, Vec<f32>, Vec<(String, Vec<f32>)>);

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

/// Central differences of `sum(y * u)` in every input value and every parameter.
fn check_finite_differences<L: Layer<Cpu>>(run: &mut Run<L>, x: &[f32], u: &[f32], with_dx: bool) {
    let (_, dx, grads) = run.gradients(x, u);
    if with_dx {
        let mut xp = x.to_vec();
        for i in 0..x.len() {
            xp[i] = x[i] + STEP;
            let plus = run.loss(&xp, u);
            xp[i] = x[i] - STEP;
            let minus = run.loss(&xp, u);
            xp[i] = x[i];
            let fd = ((plus - minus) / (2.0 * f64::from(STEP))) as f32;
            assert!(
                (dx[i] - fd).abs() < 2e-3 * (1.0 + fd.abs()),
                "dx[{i}]: {} vs {fd}",
                dx[i]
            );
        }
    }
    for (name, grad) in grads {
        let mut values = run.parameter(&name);
        for i in 0..values.len() {
            let v = values[i];
            values[i] = v + STEP;
            run.set(&name, &values);
            let plus = run.loss(x, u);
            values[i] = v - STEP;
            run.set(&name, &values);
            let minus = run.loss(x, u);
            values[i] = v;
            run.set(&name, &values);
            let fd = ((plus - minus) / (2.0 * f64::from(STEP))) as f32;
            assert!(
                (grad[i] - fd).abs() < 2e-3 * (1.0 + fd.abs()),
                "{name}[{i}]: {} vs {fd}",
                grad[i]
            );
        }
    }
}

fn lstm(units: usize, return_sequences: bool) -> RecurrentSpec {
    RecurrentSpec {
        cell: Cell::Lstm,
        units,
        return_sequences,
        stateful: false,
        bidirectional: false,
        dropout: 0.0,
    }
}

/// Every cell kiln has.
const CELLS: [Cell; 4] = [
    Cell::Lstm,
    Cell::Gru { reset_after: true },
    Cell::Gru { reset_after: false },
    Cell::SimpleRnn,
];

fn recurrent(cell: Cell, units: usize, return_sequences: bool) -> RecurrentSpec {
    RecurrentSpec {
        cell,
        ..lstm(units, return_sequences)
    }
}

#[test]
fn recurrent_gradients_match_finite_differences() {
    for (cell, bidirectional) in CELLS.into_iter().flat_map(|c| [(c, false), (c, true)]) {
        for return_sequences in [true, false] {
            let input = Shape::new(&[4, 3]);
            let spec = RecurrentSpec {
                bidirectional,
                ..recurrent(cell, 5, return_sequences)
            };
            let mut run = Run::<Recurrent<Cpu>>::new(&spec, input, 2);
            // Biases away from zero, so that each of a GRU's two counts.
            for name in ["bias", "reverse_bias"]
                .into_iter()
                .take(1 + usize::from(bidirectional))
            {
                let bias = run.parameter(name);
                run.set(name, &sequence(bias.len(), 0.53, 0.2, 0.4, f64::sin));
            }
            let x = sequence(24, 0.41, 0.3, 1.0, f64::sin);
            let u = sequence(run.out_len, 0.29, 1.1, 1.0, f64::cos);
            check_finite_differences(&mut run, &x, &u, true);
        }
    }
}

#[test]
fn time_dense_gradients_match_finite_differences() {
    let spec = TimeDenseSpec {
        units: 4,
        activation: Activation::Tanh,
    };
    let mut run = Run::<TimeDense<Cpu>>::new(&spec, Shape::new(&[3, 5]), 2);
    run.set("bias", &[0.1, -0.2, 0.3, 0.05]);
    let x = sequence(30, 0.41, 0.3, 1.0, f64::sin);
    let u = sequence(run.out_len, 0.29, 1.1, 1.0, f64::cos);
    check_finite_differences(&mut run, &x, &u, true);
}

#[test]
fn embedding_gradients_match_finite_differences() {
    let spec = EmbeddingSpec {
        vocabulary: 6,
        width: 3,
    };
    let mut run = Run::<Embedding<Cpu>>::new(&spec, Shape::tokens(&[5], 6), 2);
    let ids: Vec<f32> = (0..10).map(|i| ((i * 4 + 1) % 6) as f32).collect();
    let u = sequence(run.out_len, 0.29, 1.1, 1.0, f64::cos);
    check_finite_differences(&mut run, &ids, &u, false);
    // Ids have no gradient.
    let (_, dx, _) = run.gradients(&ids, &u);
    assert!(dx.iter().all(|&v| v == 0.0));
}

#[test]
fn an_id_past_the_vocabulary_is_an_error_naming_its_place() {
    let spec = EmbeddingSpec {
        vocabulary: 6,
        width: 3,
    };
    let mut run = Run::<Embedding<Cpu>>::new(&spec, Shape::tokens(&[5], 6), 2);
    let x = run
        .cpu
        .alloc_from(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 6.0, 1.0, 1.0])
        .unwrap();
    let mut y = run.cpu.alloc(30).unwrap();
    let err = run
        .layer
        .forward(&run.cpu, &x, &mut y, 2, Mode::Eval)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Kernel(KernelError::InvalidToken {
                row: 1,
                position: 2,
                vocabulary: 6,
                ..
            })
        ),
        "{err}"
    );
}

/// A layer of `spec` given the oracle's weights, PyTorch's loaded through
/// [`weights_from_pytorch`] (Keras's formula for a GRU without `reset_after`, whose
/// weights the oracle draws in Keras's layout), run on the oracle's data; a
/// bidirectional layer's reverse weights from salts 10 higher.
fn pytorch_layer(spec: &RecurrentSpec) -> Gradients {
    let (b, t, f, h) = (2, 5, 3, 4);
    let cell = spec.cell;
    let mut run = Run::<Recurrent<Cpu>>::new(spec, Shape::new(&[t, f]), b);
    let w = cell.gates() * h;
    let weights = |salt: f64, n: usize| sequence(n, 0.23, salt, 0.5, f64::cos);
    let directions: &[(f64, &str)] = if spec.bidirectional {
        &[(2.0, ""), (12.0, "reverse_")]
    } else {
        &[(2.0, "")]
    };
    for &(base, prefix) in directions {
        let loaded = if cell == (Cell::Gru { reset_after: false }) {
            kiln_nn::RecurrentWeights {
                kernel: weights(base, w * f),
                recurrent_kernel: weights(base + 1.0, w * h),
                bias: weights(base + 2.0, w),
            }
        } else {
            weights_from_pytorch(
                cell,
                f,
                h,
                &weights(base, w * f),
                &weights(base + 1.0, w * h),
                &weights(base + 2.0, w),
                &weights(base + 3.0, w),
            )
            .unwrap()
        };
        run.set(&format!("{prefix}kernel"), &loaded.kernel);
        run.set(
            &format!("{prefix}recurrent_kernel"),
            &loaded.recurrent_kernel,
        );
        run.set(&format!("{prefix}bias"), &loaded.bias);
    }
    let x = sequence(b * t * f, 0.37, 1.0, 0.9, f64::sin);
    let u = sequence(run.out_len, 0.11, 7.0, 1.0, f64::sin);
    run.gradients(&x, &u)
}

fn pytorch_recurrent(cell: Cell, return_sequences: bool) -> Gradients {
    pytorch_layer(&recurrent(cell, 4, return_sequences))
}

/// `m` (`rows x cols`, row major) transposed.
fn transposed(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| m[r * cols + c]))
        .collect()
}

#[test]
fn lstm_matches_pytorch_with_the_same_weights() {
    type Expected = [&'static [f32]; 5];
    let cases: [(bool, Expected); 2] = [
        (
            true,
            [
                oracle::LSTM_SEQ_Y,
                oracle::LSTM_SEQ_DX,
                oracle::LSTM_SEQ_DW_IH,
                oracle::LSTM_SEQ_DW_HH,
                oracle::LSTM_SEQ_DB,
            ],
        ),
        (
            false,
            [
                oracle::LSTM_LAST_Y,
                oracle::LSTM_LAST_DX,
                oracle::LSTM_LAST_DW_IH,
                oracle::LSTM_LAST_DW_HH,
                oracle::LSTM_LAST_DB,
            ],
        ),
    ];
    for (return_sequences, [y, dx, dw_ih, dw_hh, db]) in cases {
        let (got_y, got_dx, grads) = pytorch_recurrent(Cell::Lstm, return_sequences);
        assert_close("y", &got_y, y, 1e-5);
        assert_close("dx", &got_dx, dx, 1e-5);
        // kiln's kernels are PyTorch's transposed.
        assert_close("kernel", &grads[0].1, &transposed(dw_ih, 16, 3), 1e-5);
        assert_close(
            "recurrent_kernel",
            &grads[1].1,
            &transposed(dw_hh, 16, 4),
            1e-5,
        );
        assert_close("bias", &grads[2].1, db, 1e-5);
    }
}

/// `nn.GRU`, `nn.RNN` and Keras's reset_after=False GRU, whose gradients the oracle
/// writes in kiln's layout.
#[test]
fn gru_and_simple_rnn_match_pytorch_with_the_same_weights() {
    use oracle::*;
    let gru = |reset_after| Cell::Gru { reset_after };
    let cases: [(Cell, bool, [&[f32]; 5]); 6] = [
        (
            gru(true),
            true,
            [
                GRU_SEQ_Y,
                GRU_SEQ_DX,
                GRU_SEQ_DKERNEL,
                GRU_SEQ_DRECURRENT,
                GRU_SEQ_DBIAS,
            ],
        ),
        (
            gru(true),
            false,
            [
                GRU_LAST_Y,
                GRU_LAST_DX,
                GRU_LAST_DKERNEL,
                GRU_LAST_DRECURRENT,
                GRU_LAST_DBIAS,
            ],
        ),
        (
            gru(false),
            true,
            [
                GRU_BEFORE_SEQ_Y,
                GRU_BEFORE_SEQ_DX,
                GRU_BEFORE_SEQ_DKERNEL,
                GRU_BEFORE_SEQ_DRECURRENT,
                GRU_BEFORE_SEQ_DBIAS,
            ],
        ),
        (
            gru(false),
            false,
            [
                GRU_BEFORE_LAST_Y,
                GRU_BEFORE_LAST_DX,
                GRU_BEFORE_LAST_DKERNEL,
                GRU_BEFORE_LAST_DRECURRENT,
                GRU_BEFORE_LAST_DBIAS,
            ],
        ),
        (
            Cell::SimpleRnn,
            true,
            [
                RNN_SEQ_Y,
                RNN_SEQ_DX,
                RNN_SEQ_DKERNEL,
                RNN_SEQ_DRECURRENT,
                RNN_SEQ_DBIAS,
            ],
        ),
        (
            Cell::SimpleRnn,
            false,
            [
                RNN_LAST_Y,
                RNN_LAST_DX,
                RNN_LAST_DKERNEL,
                RNN_LAST_DRECURRENT,
                RNN_LAST_DBIAS,
            ],
        ),
    ];
    for (cell, return_sequences, [y, dx, dkernel, drecurrent, dbias]) in cases {
        let what = format!("{cell:?}, return_sequences {return_sequences}");
        let (got_y, got_dx, grads) = pytorch_recurrent(cell, return_sequences);
        assert_close(&format!("{what}: y"), &got_y, y, 1e-5);
        assert_close(&format!("{what}: dx"), &got_dx, dx, 1e-5);
        assert_close(&format!("{what}: kernel"), &grads[0].1, dkernel, 1e-5);
        assert_close(&format!("{what}: recurrent"), &grads[1].1, drecurrent, 1e-5);
        assert_close(&format!("{what}: bias"), &grads[2].1, dbias, 1e-5);
    }
}

/// Bidirectional `nn.LSTM` and `nn.GRU`: every step's output, or (Keras's last
/// output) both directions' final states.
#[test]
fn bidirectional_layers_match_pytorch_with_the_same_weights() {
    use oracle::*;
    type Expected = [&'static [f32]; 8];
    let cases: [(Cell, bool, Expected); 4] = [
        (
            Cell::Lstm,
            true,
            [
                BI_LSTM_SEQ_Y,
                BI_LSTM_SEQ_DX,
                BI_LSTM_SEQ_FORWARD_DKERNEL,
                BI_LSTM_SEQ_FORWARD_DRECURRENT,
                BI_LSTM_SEQ_FORWARD_DBIAS,
                BI_LSTM_SEQ_REVERSE_DKERNEL,
                BI_LSTM_SEQ_REVERSE_DRECURRENT,
                BI_LSTM_SEQ_REVERSE_DBIAS,
            ],
        ),
        (
            Cell::Lstm,
            false,
            [
                BI_LSTM_LAST_Y,
                BI_LSTM_LAST_DX,
                BI_LSTM_LAST_FORWARD_DKERNEL,
                BI_LSTM_LAST_FORWARD_DRECURRENT,
                BI_LSTM_LAST_FORWARD_DBIAS,
                BI_LSTM_LAST_REVERSE_DKERNEL,
                BI_LSTM_LAST_REVERSE_DRECURRENT,
                BI_LSTM_LAST_REVERSE_DBIAS,
            ],
        ),
        (
            Cell::Gru { reset_after: true },
            true,
            [
                BI_GRU_SEQ_Y,
                BI_GRU_SEQ_DX,
                BI_GRU_SEQ_FORWARD_DKERNEL,
                BI_GRU_SEQ_FORWARD_DRECURRENT,
                BI_GRU_SEQ_FORWARD_DBIAS,
                BI_GRU_SEQ_REVERSE_DKERNEL,
                BI_GRU_SEQ_REVERSE_DRECURRENT,
                BI_GRU_SEQ_REVERSE_DBIAS,
            ],
        ),
        (
            Cell::Gru { reset_after: true },
            false,
            [
                BI_GRU_LAST_Y,
                BI_GRU_LAST_DX,
                BI_GRU_LAST_FORWARD_DKERNEL,
                BI_GRU_LAST_FORWARD_DRECURRENT,
                BI_GRU_LAST_FORWARD_DBIAS,
                BI_GRU_LAST_REVERSE_DKERNEL,
                BI_GRU_LAST_REVERSE_DRECURRENT,
                BI_GRU_LAST_REVERSE_DBIAS,
            ],
        ),
    ];
    for (cell, return_sequences, expected) in cases {
        let spec = RecurrentSpec {
            bidirectional: true,
            ..recurrent(cell, 4, return_sequences)
        };
        let (y, dx, grads) = pytorch_layer(&spec);
        let what = format!("{cell:?}, return_sequences {return_sequences}");
        assert_close(&format!("{what}: y"), &y, expected[0], 1e-5);
        assert_close(&format!("{what}: dx"), &dx, expected[1], 1e-5);
        assert_eq!(grads.len(), 6, "{what}: both directions' parameters");
        for ((name, got), want) in grads.iter().zip(&expected[2..]) {
            assert_close(&format!("{what}: {name}"), got, want, 1e-5);
        }
    }
}

#[test]
fn embedding_matches_pytorch_with_the_same_weights() {
    let spec = EmbeddingSpec {
        vocabulary: 7,
        width: 3,
    };
    let mut run = Run::<Embedding<Cpu>>::new(&spec, Shape::tokens(&[6], 7), 2);
    // nn.Embedding.weight is kiln's layout.
    run.set("weight", &sequence(21, 0.23, 6.0, 0.5, f64::cos));
    let ids: Vec<f32> = (0..12).map(|i| ((7 * i + 3) % 7) as f32).collect();
    let u = sequence(36, 0.11, 7.0, 1.0, f64::sin);
    let (y, _, grads) = run.gradients(&ids, &u);
    assert_close("y", &y, oracle::EMBEDDING_Y, 1e-6);
    assert_close("weight", &grads[0].1, oracle::EMBEDDING_DW, 1e-6);
}

#[test]
fn pytorch_weights_of_the_wrong_size_are_an_error() {
    let err = weights_from_pytorch(
        Cell::Lstm,
        3,
        4,
        &[0.0; 47],
        &[0.0; 64],
        &[0.0; 16],
        &[0.0; 16],
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("weight_ih holds 47 values, 48 expected"),
        "{err}"
    );
    let gru = Cell::Gru { reset_after: false };
    let err = weights_from_pytorch(gru, 3, 4, &[0.0; 36], &[0.0; 48], &[0.0; 12], &[0.0; 12])
        .unwrap_err();
    assert!(err.to_string().contains("reset_after = true"), "{err}");
}

#[test]
fn the_forget_gate_bias_starts_at_one() {
    let run = Run::<Recurrent<Cpu>>::new(&lstm(3, true), Shape::new(&[2, 2]), 1);
    let bias = run.parameter("bias");
    assert_eq!(
        bias,
        [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
    // The recurrent kernel's rows are orthonormal.
    let u = run.parameter("recurrent_kernel");
    for r in 0..3 {
        for q in 0..3 {
            let dot: f32 = (0..12).map(|c| u[r * 12 + c] * u[q * 12 + c]).sum();
            let want = if r == q { 1.0 } else { 0.0 };
            assert!((dot - want).abs() < 1e-5, "{r} {q}: {dot}");
        }
    }
}

/// A stateful layer reading a sequence in two windows ends where a layer reading it
/// whole does; after `reset_states` it starts from zero again.
#[test]
fn a_stateful_layer_carries_its_states_across_windows() {
    for cell in CELLS {
        stateful_windows(cell);
    }
}

fn stateful_windows(cell: Cell) {
    let (f, h) = (3, 4);
    let whole = Run::<Recurrent<Cpu>>::new(&recurrent(cell, h, false), Shape::new(&[6, f]), 2);
    let stateful = RecurrentSpec {
        stateful: true,
        ..recurrent(cell, h, false)
    };
    let mut halves = Run::<Recurrent<Cpu>>::new(&stateful, Shape::new(&[3, f]), 2);
    let mut whole = whole;
    for name in ["kernel", "recurrent_kernel", "bias"] {
        let values = whole.parameter(name);
        halves.set(name, &values);
    }
    let x = sequence(2 * 6 * f, 0.37, 1.0, 0.9, f64::sin);
    let half = |k: usize| -> Vec<f32> {
        (0..2)
            .flat_map(|b| x[(b * 6 + 3 * k) * f..(b * 6 + 3 * k + 3) * f].to_vec())
            .collect()
    };
    let want = whole.forward(&x);
    let first = halves.forward(&half(0));
    let second = halves.forward(&half(1));
    assert_close("carried", &second, &want, 1e-6);
    halves.layer.reset_states();
    assert_eq!(halves.forward(&half(0)), first);
}

/// Dropout on the input: in training, the layer is the same layer without dropout
/// reading the input with the dropped values zeroed and the rest scaled by
/// `1 / (1 - rate)` (the dropped values are those whose gradient is exactly zero),
/// and the input gradient goes back through the same mask; in inference, it is the
/// layer without dropout.
#[test]
fn input_dropout_is_a_dropout_before_the_layer() {
    let rate = 0.3;
    for (cell, bidirectional) in [(Cell::Lstm, true), (Cell::Gru { reset_after: true }, false)] {
        let plain_spec = RecurrentSpec {
            bidirectional,
            ..recurrent(cell, 4, true)
        };
        let spec = RecurrentSpec {
            dropout: rate,
            ..plain_spec
        };
        let input = Shape::new(&[6, 5]);
        let mut dropped = Run::<Recurrent<Cpu>>::new(&spec, input, 3);
        let mut plain = Run::<Recurrent<Cpu>>::new(&plain_spec, input, 3);
        let x = sequence(3 * 6 * 5, 0.41, 0.3, 1.0, f64::sin);
        let u = sequence(plain.out_len, 0.29, 1.1, 1.0, f64::cos);
        let (y, dx, grads) = dropped.gradients(&x, &u);
        let kept: Vec<bool> = dx.iter().map(|&g| g != 0.0).collect();
        let zeroed = kept.iter().filter(|k| !**k).count();
        assert!(
            (zeroed as f32 / x.len() as f32 - rate).abs() < 0.15,
            "{cell:?}: {zeroed} of {} dropped",
            x.len()
        );
        let scale = 1.0 / (1.0 - rate);
        let masked: Vec<f32> = x
            .iter()
            .zip(&kept)
            .map(|(&v, &k)| if k { v * scale } else { 0.0 })
            .collect();
        let (want_y, want_dx, want_grads) = plain.gradients(&masked, &u);
        let what = format!("{cell:?}, bidirectional {bidirectional}");
        assert_close(&format!("{what}: y"), &y, &want_y, 1e-5);
        let want_dx: Vec<f32> = want_dx
            .iter()
            .zip(&kept)
            .map(|(&g, &k)| if k { g * scale } else { 0.0 })
            .collect();
        assert_close(&format!("{what}: dx"), &dx, &want_dx, 1e-5);
        for ((name, got), (_, want)) in grads.iter().zip(&want_grads) {
            assert_close(&format!("{what}: {name}"), got, want, 1e-5);
        }
        // Inference reads the whole input, unscaled.
        let xb = dropped.cpu.alloc_from(&x).unwrap();
        let mut eval = dropped.cpu.alloc(dropped.out_len).unwrap();
        dropped
            .layer
            .forward(&dropped.cpu, &xb, &mut eval, 3, Mode::Eval)
            .unwrap();
        let eval = dropped.cpu.to_host(&eval, dropped.out_len).unwrap();
        let mut plain_eval = plain.cpu.alloc(plain.out_len).unwrap();
        plain
            .layer
            .forward(&plain.cpu, &xb, &mut plain_eval, 3, Mode::Eval)
            .unwrap();
        let plain_eval = plain.cpu.to_host(&plain_eval, plain.out_len).unwrap();
        assert_close(&format!("{what}: inference"), &eval, &plain_eval, 0.0);
    }
}
