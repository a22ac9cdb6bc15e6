//! The recurrent layers (`Lstm`, `Gru`, `SimpleRnn`): one input product over every
//! time step, then the cell's loop over time in the backend's recurrent op, and back
//! through time the same way.
//!
//! # Weights, and how they map to Keras's and PyTorch's
//! kiln keeps Keras's layouts and names (a checkpoint holds `lstm.kernel`,
//! `lstm.recurrent_kernel`, `lstm.bias`), so Keras's weights load as they are:
//!
//! | tensor | kiln / Keras | PyTorch (`nn.LSTM`, `nn.GRU`, `nn.RNN`) |
//! |---|---|---|
//! | `kernel` | `[features, gates * units]` | `weight_ih_l0`ᵀ (`[gates * units, features]`) |
//! | `recurrent_kernel` | `[units, gates * units]` | `weight_hh_l0`ᵀ (`[gates * units, units]`) |
//! | `bias` (LSTM, RNN) | `[gates * units]` | `bias_ih_l0 + bias_hh_l0` |
//! | `bias` (GRU, `reset_after`) | `[2, 3 units]`: input bias, recurrent bias | `[bias_ih_l0, bias_hh_l0]` |
//! | `bias` (GRU, `reset_after = false`) | `[3 units]` | no PyTorch form |
//!
//! The gate blocks: an LSTM's come in the same order in all three, `i, f, g, o`
//! (input, forget, cell candidate, output; Keras writes `i, f, c, o`); a GRU's are
//! Keras's `z, r, h` (update, reset, candidate), which PyTorch orders `r, z, n`; a
//! simple RNN has one. [`weights_from_pytorch`] transposes PyTorch's weights,
//! reorders a GRU's blocks and sums or stacks the biases. PyTorch's GRU is kiln's
//! (and Keras's default) `reset_after = true`; Keras's `reset_after = False` (its
//! original GRU, and ONNX's `linear_before_reset = 0`) has one bias. PyTorch's
//! `batch_first=True` is kiln's (and Keras's) `[batch, time, features]`.

use kiln_kernels::ops::InputGrad;
use kiln_kernels::ops::bias::BiasParams;
use kiln_kernels::ops::concat::ConcatParams;
use kiln_kernels::ops::dropout::DropoutParams;
use kiln_kernels::ops::matmul::MatmulParams;
use kiln_kernels::ops::recurrent::{RecurrentParams, RecurrentWorkspace, gru_bias_len};
use kiln_kernels::rng::Rng;
use kiln_kernels::{Backend, ParamMut, ParamRef, ViewParams, VisitParams};
use kiln_shape::{Cell, RecurrentSpec, Shape};

use crate::init::glorot_uniform;
use crate::layer::{checked_output, overwrite_only};
use crate::{Backward, Error, Layer, Mode, Result};

/// A recurrent layer over `[time, features]` sequences, from zero initial states or,
/// `stateful`, from the states its previous call ended with (the gradient cut there:
/// truncated backpropagation through time; [`Recurrent::reset_states`] starts again).
/// A stateful layer keeps one state a batch row, so its batches keep their size.
/// `bidirectional`, a second set of weights reads each sequence from its end, and the
/// output concatenates both directions. `dropout`, in training the input's values are
/// zeroed with that probability (each value of each step on its own) and the rest
/// scaled up, before the input product.
///
/// # Shapes
/// - input: `[batch, time, features]`
/// - output: `[batch, time, units]` with `return_sequences = true`, else the last
///   step's `[batch, units]` (`2 units` when bidirectional)
/// - `kernel`: `[features, gates * units]`, glorot-uniform
/// - `recurrent_kernel`: `[units, gates * units]`, orthogonal (Keras's default)
/// - `bias`: `[gates * units]` (a GRU with `reset_after`: `[2, 3 units]`), zero but
///   for the LSTM's forget gate, 1 (Keras's `unit_forget_bias`)
/// - bidirectional: `reverse_kernel`, `reverse_recurrent_kernel` and `reverse_bias`
///   too, the reverse direction's
///
/// Its workspace (gates, states and their gradients for every step) is sized for the
/// largest batch when the layer is built, so neither pass allocates. Stack layers
/// by giving every one but the last `return_sequences = true`.
#[derive(Debug)]
pub struct Recurrent<B: Backend> {
    spec: RecurrentSpec,
    time: usize,
    features: usize,
    forward: Direction<B>,
    reverse: Option<Reverse<B>>,
    dropout: Option<InputDropout<B>>,
    /// A stateful layer's next call starts from the last one's states.
    carried: bool,
}

/// Dropout on the input (`dropout > 0`): the dropped input, which both directions
/// read, and its gradient, sized at build.
#[derive(Debug)]
struct InputDropout<B: Backend> {
    rng: Rng,
    /// The last forward's mask: `None` after an inference forward.
    seed: Option<u64>,
    /// `[batch, time, features]`: the input with values dropped.
    x: B::Buffer,
    /// `[batch, time, features]`: the gradient at the dropped input.
    dx: B::Buffer,
}

/// One direction's weights, their gradients, and its workspace.
#[derive(Debug)]
struct Direction<B: Backend> {
    kernel: B::Buffer,
    recurrent_kernel: B::Buffer,
    bias: B::Buffer,
    dkernel: B::Buffer,
    drecurrent_kernel: B::Buffer,
    dbias: B::Buffer,
    ws: RecurrentWorkspace<B::Buffer>,
}

/// A bidirectional layer's reverse direction and the buffers between the two
/// directions and the output, all sized at build.
#[derive(Debug)]
struct Reverse<B: Backend> {
    dir: Direction<B>,
    /// `[batch, time, features]`: the input, steps reversed.
    x: B::Buffer,
    /// `[batch, time, features]`: the reverse direction's input gradient.
    dx: B::Buffer,
    /// The forward direction's output, then its output gradient.
    forward_y: B::Buffer,
    /// The reverse direction's output in its own (reversed) order, then its output
    /// gradient in that order.
    y: B::Buffer,
    /// With `return_sequences`: the reverse direction's output (then gradient) in
    /// time order.
    y_in_order: B::Buffer,
}

/// Keras-layout weights of a recurrent layer: `kernel`, `recurrent_kernel` and `bias`.
#[derive(Clone, Debug, PartialEq)]
pub struct RecurrentWeights {
    /// `[features, gates * units]`.
    pub kernel: Vec<f32>,
    /// `[units, gates * units]`.
    pub recurrent_kernel: Vec<f32>,
    /// `[gates * units]`, or `[2, 3 units]` for a GRU with `reset_after`.
    pub bias: Vec<f32>,
}

/// The weights of a PyTorch `nn.LSTM`, `nn.GRU` or `nn.RNN` (tanh) layer
/// (`weight_ih_l0` `[gates * units, features]`, `weight_hh_l0`
/// `[gates * units, units]`, `bias_ih_l0` and `bias_hh_l0` `[gates * units]`, row
/// major) in kiln's layout: transposed, the gate blocks in Keras's order (a GRU's
/// `r, z, n` become `z, r, c`), and the two biases summed, except a GRU's, which
/// stay two rows (kiln's `reset_after = true`, the only GRU PyTorch has). Fails when
/// a length does not match `features` and `units`, and for a GRU without
/// `reset_after`.
pub fn weights_from_pytorch(
    cell: Cell,
    features: usize,
    units: usize,
    weight_ih: &[f32],
    weight_hh: &[f32],
    bias_ih: &[f32],
    bias_hh: &[f32],
) -> Result<RecurrentWeights> {
    let w = cell.gates() * units;
    if cell == (Cell::Gru { reset_after: false }) {
        return Err(Error::Spec {
            kind: cell.name(),
            detail: "PyTorch's GRU resets after the recurrent product: load it with `reset_after = true`".into(),
        });
    }
    for (name, len, needed) in [
        ("weight_ih", weight_ih.len(), w * features),
        ("weight_hh", weight_hh.len(), w * units),
        ("bias_ih", bias_ih.len(), w),
        ("bias_hh", bias_hh.len(), w),
    ] {
        if len != needed {
            return Err(Error::Spec {
                kind: cell.name(),
                detail: format!("PyTorch's {name} holds {len} values, {needed} expected"),
            });
        }
    }
    // Kiln's gate block `k` is PyTorch's block `source(k)`.
    let source = |k: usize| match (cell, k) {
        (Cell::Gru { .. }, 0) => 1,
        (Cell::Gru { .. }, 1) => 0,
        _ => k,
    };
    let row = |r: usize| source(r / units) * units + r % units;
    let transpose = |m: &[f32], cols: usize| -> Vec<f32> {
        let mut out = vec![0.0; m.len()];
        for r in 0..w {
            for c in 0..cols {
                out[c * w + r] = m[row(r) * cols + c];
            }
        }
        out
    };
    let reorder = |b: &[f32]| (0..w).map(|r| b[row(r)]).collect::<Vec<f32>>();
    let bias = match cell {
        Cell::Gru { .. } => [reorder(bias_ih), reorder(bias_hh)].concat(),
        _ => bias_ih.iter().zip(bias_hh).map(|(a, b)| a + b).collect(),
    };
    Ok(RecurrentWeights {
        kernel: transpose(weight_ih, features),
        recurrent_kernel: transpose(weight_hh, units),
        bias,
    })
}

/// `rows x cols` values whose rows are orthonormal (`rows <= cols`): Gram-Schmidt on
/// normal draws, Keras's `Orthogonal` initialiser for a recurrent kernel.
fn orthogonal(rows: usize, cols: usize, rng: &mut Rng) -> Vec<f32> {
    let mut normal = || {
        // Box-Muller from two uniforms in (0, 1].
        let u1 = 1.0 - f64::from(rng.uniform());
        let u2 = f64::from(rng.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let mut m: Vec<f64> = (0..rows * cols).map(|_| normal()).collect();
    for r in 0..rows {
        for q in 0..r {
            let dot: f64 = (0..cols).map(|c| m[r * cols + c] * m[q * cols + c]).sum();
            for c in 0..cols {
                m[r * cols + c] -= dot * m[q * cols + c];
            }
        }
        let norm = (0..cols)
            .map(|c| m[r * cols + c].powi(2))
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        for c in 0..cols {
            m[r * cols + c] /= norm;
        }
    }
    m.into_iter().map(|v| v as f32).collect()
}

impl<B: Backend> Direction<B> {
    fn build(
        backend: &B,
        spec: &RecurrentSpec,
        (time, features): (usize, usize),
        max_batch: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        let (h, w) = (spec.units, spec.gate_width());
        let kernel = glorot_uniform(backend, features * w, features, w, rng)?;
        let recurrent_kernel = backend.alloc_from(&orthogonal(h, w, rng))?;
        let mut bias = vec![0.0; bias_len(spec)];
        if spec.cell == Cell::Lstm {
            bias[h..2 * h].fill(1.0);
        }
        Ok(Self {
            kernel,
            recurrent_kernel,
            dkernel: backend.alloc(features * w)?,
            drecurrent_kernel: backend.alloc(h * w)?,
            dbias: backend.alloc(bias.len())?,
            bias: backend.alloc_from(&bias)?,
            ws: RecurrentWorkspace::new(backend, max_batch, time, h, spec.cell.gates())?,
        })
    }

    /// The input product, then the time loop: `y` gets this direction's output.
    fn forward(
        &mut self,
        backend: &B,
        spec: &RecurrentSpec,
        (proj, p): (&MatmulParams, &RecurrentParams),
        x: &B::Buffer,
        y: &mut B::Buffer,
    ) -> Result<()> {
        backend.matmul(proj, x, &self.kernel, &mut self.ws.gates)?;
        let (u, ws) = (&self.recurrent_kernel, &mut self.ws);
        if let Cell::Gru { reset_after } = spec.cell {
            // The GRU's biases meet the gates inside the time loop.
            return Ok(backend.gru_fwd(p, reset_after, u, &self.bias, ws, y)?);
        }
        let bias = BiasParams::new(proj.m, proj.n);
        backend.bias_activation(&bias, &self.bias, &mut ws.gates)?;
        match spec.cell {
            Cell::Lstm => backend.lstm_fwd(p, u, ws, y)?,
            Cell::SimpleRnn => backend.rnn_fwd(p, u, ws, y)?,
            Cell::Gru { .. } => unreachable!("run above"),
        }
        Ok(())
    }

    /// Back through time from `dy`, then the input product's gradients.
    fn backward(
        &mut self,
        backend: &B,
        spec: &RecurrentSpec,
        (proj, p): (&MatmulParams, &RecurrentParams),
        (x, dy): (&B::Buffer, &B::Buffer),
        dx: Option<InputGrad<'_, B::Buffer>>,
    ) -> Result<()> {
        let (u, ws, du) = (
            &self.recurrent_kernel,
            &mut self.ws,
            &mut self.drecurrent_kernel,
        );
        match spec.cell {
            Cell::Lstm => backend.lstm_bwd(p, u, ws, dy, du)?,
            Cell::SimpleRnn => backend.rnn_bwd(p, u, ws, dy, du)?,
            Cell::Gru { reset_after } => {
                backend.gru_bwd(p, reset_after, u, ws, dy, du, &mut self.dbias)?;
            }
        }
        // The gates' gradient now holds every step: the input product's gradients
        // are one product each, as in a dense layer.
        let dgates = &self.ws.gates;
        let dw = MatmulParams {
            m: proj.k,
            n: proj.n,
            k: proj.m,
            trans_a: true,
            trans_b: false,
            accumulate: true,
        };
        backend.matmul(&dw, x, dgates, &mut self.dkernel)?;
        if !matches!(spec.cell, Cell::Gru { .. }) {
            backend.bias_grad(&BiasParams::new(proj.m, proj.n), dgates, &mut self.dbias)?;
        }
        if let Some(dx) = dx {
            let dxp = MatmulParams {
                m: proj.m,
                n: proj.k,
                k: proj.n,
                trans_a: false,
                trans_b: true,
                accumulate: dx.accumulate,
            };
            backend.matmul(&dxp, dgates, &self.kernel, dx.buffer)?;
        }
        Ok(())
    }

    fn tensors(&mut self) -> [(&mut B::Buffer, &mut B::Buffer); 3] {
        [
            (&mut self.kernel, &mut self.dkernel),
            (&mut self.recurrent_kernel, &mut self.drecurrent_kernel),
            (&mut self.bias, &mut self.dbias),
        ]
    }

    fn tensors_ref(&self) -> [(&B::Buffer, &B::Buffer); 3] {
        [
            (&self.kernel, &self.dkernel),
            (&self.recurrent_kernel, &self.drecurrent_kernel),
            (&self.bias, &self.dbias),
        ]
    }
}

/// Values of the bias: a GRU with `reset_after` has a second, recurrent one.
fn bias_len(spec: &RecurrentSpec) -> usize {
    match spec.cell {
        Cell::Gru { reset_after } => gru_bias_len(spec.units, reset_after),
        _ => spec.gate_width(),
    }
}

/// A call's sizes: the input product, the time loop, and the reversal and
/// concatenation of a bidirectional layer.
struct Sizes {
    proj: MatmulParams,
    p: RecurrentParams,
    steps: RecurrentParams,
    out_steps: RecurrentParams,
    halves: [ConcatParams; 2],
}

/// Back through both directions (or the one) from the output gradient `dy`, given
/// the input `x` the forward pass read.
fn backward_directions<B: Backend>(
    backend: &B,
    spec: &RecurrentSpec,
    sizes: &Sizes,
    (forward, reverse): (&mut Direction<B>, Option<&mut Reverse<B>>),
    (x, dy): (&B::Buffer, &B::Buffer),
    dx: Option<InputGrad<'_, B::Buffer>>,
) -> Result<()> {
    let Sizes {
        proj,
        p,
        steps,
        out_steps,
        halves,
    } = sizes;
    let Some(rev) = reverse else {
        return forward.backward(backend, spec, (proj, p), (x, dy), dx);
    };
    // Each direction's share of the output gradient, the reverse one's in its own
    // order.
    backend.concat_bwd(&halves[0], dy, InputGrad::write(&mut rev.forward_y))?;
    if spec.return_sequences {
        backend.concat_bwd(&halves[1], dy, InputGrad::write(&mut rev.y_in_order))?;
        backend.reverse_time(out_steps, &rev.y_in_order, InputGrad::write(&mut rev.y))?;
    } else {
        backend.concat_bwd(&halves[1], dy, InputGrad::write(&mut rev.y))?;
    }
    let mut dx = dx;
    forward.backward(
        backend,
        spec,
        (proj, p),
        (x, &rev.forward_y),
        dx.as_mut().map(InputGrad::reborrow),
    )?;
    let wants_dx = dx.is_some();
    rev.dir.backward(
        backend,
        spec,
        (proj, p),
        (&rev.x, &rev.y),
        wants_dx.then(|| InputGrad::write(&mut rev.dx)),
    )?;
    if let Some(dx) = dx {
        // Added to what the forward direction wrote (or added).
        backend.reverse_time(steps, &rev.dx, InputGrad::add_to(dx.buffer))?;
    }
    Ok(())
}

impl<B: Backend> Recurrent<B> {
    fn params(&self, batch: usize) -> Result<RecurrentParams> {
        Ok(RecurrentParams::new(
            batch,
            self.time,
            self.spec.units,
            self.spec.return_sequences,
        )?
        .carrying(self.carried))
    }

    /// A stateful layer's next call starts from zero states again (a new stream, a
    /// new generated text); a layer that is not stateful always does.
    pub fn reset_states(&mut self) {
        self.carried = false;
    }

    /// The input product over all steps: `[batch * time, features] x [features, width]`.
    fn projection(&self, batch: usize) -> Result<MatmulParams> {
        let u32_of = |v: usize| {
            u32::try_from(v).map_err(|_| Error::Spec {
                kind: self.spec.cell.name(),
                detail: format!("size {v} does not fit in 32 bits"),
            })
        };
        Ok(MatmulParams {
            m: u32_of(batch * self.time)?,
            n: u32_of(self.spec.gate_width())?,
            k: u32_of(self.features)?,
            trans_a: false,
            trans_b: false,
            accumulate: false,
        })
    }

    fn shapes(&self) -> [Shape; 3] {
        let (f, h, w) = (self.features, self.spec.units, self.spec.gate_width());
        let bias = match self.spec.cell {
            Cell::Gru { reset_after: true } => Shape::new(&[2, w]),
            _ => Shape::new(&[w]),
        };
        [Shape::new(&[f, w]), Shape::new(&[h, w]), bias]
    }

    /// The input's dropout over a batch (its seed set at each call).
    fn dropout_params(&self, batch: usize) -> Result<DropoutParams> {
        let len = batch * self.time * self.features;
        Ok(DropoutParams {
            len: u32::try_from(len).map_err(|_| Error::Spec {
                kind: self.spec.cell.name(),
                detail: format!("{len} input values do not fit in 32 bits"),
            })?,
            rate: self.spec.dropout,
            seed: 0,
        })
    }

    /// Sequences of `width` values a step, for the reversal op.
    fn steps(&self, batch: usize, width: usize) -> Result<RecurrentParams> {
        Ok(RecurrentParams::new(batch, self.time, width, true)?)
    }

    /// Where each direction's output goes in the concatenated output.
    fn halves(&self, batch: usize) -> Result<[ConcatParams; 2]> {
        let rows = if self.spec.return_sequences {
            batch * self.time
        } else {
            batch
        };
        let h = self.spec.units;
        Ok([
            ConcatParams::new(rows, h, 2 * h, 0)?,
            ConcatParams::new(rows, h, 2 * h, h)?,
        ])
    }
}

const NAMES: [&str; 3] = ["kernel", "recurrent_kernel", "bias"];
const REVERSE_NAMES: [&str; 3] = ["reverse_kernel", "reverse_recurrent_kernel", "reverse_bias"];

impl<B: Backend> Layer<B> for Recurrent<B> {
    type Spec = RecurrentSpec;

    fn build(
        backend: &B,
        spec: &RecurrentSpec,
        input: Shape,
        max_batch: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        checked_output(spec, input)?;
        let (time, features) = (input.dims()[0], input.dims()[1]);
        let forward = Direction::build(backend, spec, (time, features), max_batch, rng)?;
        let reverse = if spec.bidirectional {
            let out = max_batch * spec.units * if spec.return_sequences { time } else { 1 };
            let sequence = max_batch * time * spec.units;
            Some(Reverse {
                dir: Direction::build(backend, spec, (time, features), max_batch, rng)?,
                x: backend.alloc(max_batch * time * features)?,
                dx: backend.alloc(max_batch * time * features)?,
                forward_y: backend.alloc(out)?,
                y: backend.alloc(out)?,
                y_in_order: backend.alloc(if spec.return_sequences { sequence } else { 0 })?,
            })
        } else {
            None
        };
        // Forked after the weights, so that a layer without dropout draws the same.
        let dropout = if spec.dropout > 0.0 {
            Some(InputDropout {
                rng: rng.fork(0),
                seed: None,
                x: backend.alloc(max_batch * time * features)?,
                dx: backend.alloc(max_batch * time * features)?,
            })
        } else {
            None
        };
        Ok(Self {
            spec: *spec,
            time,
            features,
            forward,
            reverse,
            dropout,
            carried: false,
        })
    }

    fn forward(
        &mut self,
        backend: &B,
        x: &B::Buffer,
        y: &mut B::Buffer,
        batch: usize,
        mode: Mode,
    ) -> Result<()> {
        let proj = self.projection(batch)?;
        let p = self.params(batch)?;
        let dropped = self.dropout_params(batch)?;
        let spec = self.spec;
        let (steps, out_steps) = (
            self.steps(batch, self.features)?,
            self.steps(batch, spec.units)?,
        );
        let halves = self.halves(batch)?;
        let x = match self.dropout.as_mut() {
            Some(d) if mode == Mode::Train => {
                let seed = d.rng.next_u64();
                d.seed = Some(seed);
                backend.dropout_fwd(&DropoutParams { seed, ..dropped }, x, &mut d.x)?;
                &d.x
            }
            Some(d) => {
                d.seed = None;
                x
            }
            None => x,
        };
        match self.reverse.as_mut() {
            None => self.forward.forward(backend, &spec, (&proj, &p), x, y)?,
            Some(rev) => {
                self.forward
                    .forward(backend, &spec, (&proj, &p), x, &mut rev.forward_y)?;
                backend.reverse_time(&steps, x, InputGrad::write(&mut rev.x))?;
                rev.dir
                    .forward(backend, &spec, (&proj, &p), &rev.x, &mut rev.y)?;
                let reverse_y = if spec.return_sequences {
                    backend.reverse_time(
                        &out_steps,
                        &rev.y,
                        InputGrad::write(&mut rev.y_in_order),
                    )?;
                    &rev.y_in_order
                } else {
                    // The reverse direction's last state has read back to step 0.
                    &rev.y
                };
                backend.concat_fwd(&halves[0], &rev.forward_y, y)?;
                backend.concat_fwd(&halves[1], reverse_y, y)?;
            }
        }
        // The backward pass of this call still reads its initial states, so the next
        // call, not this one, copies the last ones over.
        self.carried = self.spec.stateful;
        Ok(())
    }

    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let x = pass.input(self.spec.cell.name())?;
        let p = self.params(pass.batch)?;
        let proj = self.projection(pass.batch)?;
        let spec = self.spec;
        let (steps, out_steps) = (
            self.steps(pass.batch, self.features)?,
            self.steps(pass.batch, spec.units)?,
        );
        let halves = self.halves(pass.batch)?;
        let dropped = self.dropout_params(pass.batch)?;
        let sizes = Sizes {
            proj,
            p,
            steps,
            out_steps,
            halves,
        };
        let (forward, reverse) = (&mut self.forward, self.reverse.as_mut());
        match self.dropout.as_mut() {
            Some(InputDropout {
                seed: Some(seed),
                x: dropped_x,
                dx: dropped_dx,
                ..
            }) => {
                // The directions read the dropped input and give its gradient, which
                // goes back through the same mask.
                let dx = overwrite_only(spec.cell.name(), pass.dx)?;
                let into = dx.is_some().then(|| InputGrad::write(&mut *dropped_dx));
                backward_directions(
                    backend,
                    &spec,
                    &sizes,
                    (forward, reverse),
                    (dropped_x, pass.dy),
                    into,
                )?;
                if let Some(dx) = dx {
                    let p = DropoutParams {
                        seed: *seed,
                        ..dropped
                    };
                    backend.dropout_bwd(&p, dropped_dx, dx)?;
                }
                Ok(())
            }
            _ => backward_directions(
                backend,
                &spec,
                &sizes,
                (forward, reverse),
                (x, pass.dy),
                pass.dx,
            ),
        }
    }

    fn visit_parameters<'a>(
        &'a mut self,
        layer: &'static str,
        f: VisitParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let kind = self.spec.cell.name();
        let shapes = self.shapes();
        let directions = [
            Some((NAMES, &mut self.forward)),
            self.reverse.as_mut().map(|r| (REVERSE_NAMES, &mut r.dir)),
        ];
        for (names, dir) in directions.into_iter().flatten() {
            for ((name, shape), (value, grad)) in names.into_iter().zip(shapes).zip(dir.tensors()) {
                f(ParamMut {
                    layer,
                    kind,
                    name,
                    shape,
                    value,
                    grad,
                })?;
            }
        }
        Ok(())
    }

    fn parameters<'a>(
        &'a self,
        layer: &'static str,
        f: ViewParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let kind = self.spec.cell.name();
        let directions = [
            Some((NAMES, &self.forward)),
            self.reverse.as_ref().map(|r| (REVERSE_NAMES, &r.dir)),
        ];
        for (names, dir) in directions.into_iter().flatten() {
            for ((name, shape), (value, grad)) in
                names.into_iter().zip(self.shapes()).zip(dir.tensors_ref())
            {
                f(ParamRef {
                    layer,
                    kind,
                    name,
                    shape,
                    value,
                    grad,
                })?;
            }
        }
        Ok(())
    }
}
