//! The time loop of a recurrent layer: the recurrent products and the cell's gates,
//! step after step, forward and back through time.
//!
//! The input projection `x W + b` of every time step is one large product that the
//! layer runs before the loop (and its gradients `x^T dG`, `dG W^T` after it); this
//! op is what cannot be batched over time: at step `t`, the gates are the projection
//! plus `h[t-1] U`, and the cell turns them into `c[t]` and `h[t]`.
//!
//! Sequences are batch-major (`[batch, time, ..]`, Keras's layout), so step `t` of
//! every sample is a strided view: the products read and write it in place, with no
//! copy to a time-major layout.
//!
//! # LSTM
//! Gates in Keras's and PyTorch's order, `i, f, g, o`, each `units` wide:
//! `c[t] = σ(f) c[t-1] + σ(i) tanh(g)`, `h[t] = σ(o) tanh(c[t])`.
//!
//! # GRU
//! Gates in Keras's order, `z, r, c` (update, reset, candidate; PyTorch orders them
//! `r, z, n`), each `units` wide: `h[t] = z h[t-1] + (1 - z) c`. With `reset_after`
//! (Keras's default, PyTorch's only form, cuDNN's) the candidate is
//! `tanh(x W_c + b_c + r (h[t-1] U_c + b'_c))`, with a second, recurrent bias `b'`;
//! without it (Keras's original), `tanh(x W_c + b_c + (r h[t-1]) U_c)`, whose product
//! waits for the reset gate: two products a step.
//!
//! # Simple RNN
//! `h[t] = tanh(x W + b + h[t-1] U)`.
//!
//! # States
//! A call starts from zero states, or (`carry`) from the last step of the previous
//! call on the same workspace: a stateful layer reads a long stream window after
//! window, or generates one token at a time, without recomputing what came before.
//! The backward pass then treats the carried states as constants (truncated
//! backpropagation through time: the gradient stops at the window's start).

pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use super::{InputGrad, u32_of};
use crate::Result;
use crate::storage::Storage;

/// `batch` sequences of `time` steps through a cell `units` wide.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecurrentParams {
    /// Sequences.
    pub batch: u32,
    /// Steps a sequence.
    pub time: u32,
    /// Width of the hidden state.
    pub units: u32,
    /// 1: the output is every step's `h` (`[batch, time, units]`); 0: the last
    /// step's only (`[batch, units]`).
    pub return_sequences: u32,
    /// 1: start from the states the previous call ended with (copied into the
    /// workspace's `h0` and `c0` first); 0: from zero.
    pub carry: u32,
}

impl RecurrentParams {
    /// The parameters, or an error if a size does not fit in 32 bits.
    pub fn new(batch: usize, time: usize, units: usize, return_sequences: bool) -> Result<Self> {
        const OP: &str = "recurrent";
        Ok(Self {
            batch: u32_of(OP, "batch", batch)?,
            time: u32_of(OP, "time", time)?,
            units: u32_of(OP, "units", units)?,
            return_sequences: u32::from(return_sequences),
            carry: 0,
        })
    }

    /// The same call, starting from the states the previous call ended with.
    pub fn carrying(mut self, carry: bool) -> Self {
        self.carry = u32::from(carry);
        self
    }

    /// Values of one state sequence: `batch * time * units`.
    pub fn states(&self) -> usize {
        self.batch as usize * self.time as usize * self.units as usize
    }

    /// Values of the output.
    pub fn output(&self) -> usize {
        if self.return_sequences != 0 {
            self.states()
        } else {
            self.batch as usize * self.units as usize
        }
    }
}

/// What a recurrent layer keeps between its forward and backward passes, sized once
/// for its largest batch: the backward pass through time reads these and allocates
/// nothing.
#[derive(Debug)]
pub struct RecurrentWorkspace<T> {
    /// `[batch, time, gates * units]`: the input projection on entry to the forward
    /// pass, the activated gates after it, their gradients (at the pre-activations)
    /// after the backward pass.
    pub gates: T,
    /// `[batch, time, units]`: the cell state of each step (LSTM).
    pub cells: T,
    /// `[batch, time, units]`: the hidden state (output) of each step.
    pub hidden: T,
    /// `[batch, time, units]`: the gradient reaching each step's hidden state.
    pub dhidden: T,
    /// `[batch, units]`: the gradient reaching the cell state of the step being
    /// worked back through.
    pub dcell: T,
    /// `[batch, units]`: the hidden state before the first step (with `carry`).
    pub h0: T,
    /// `[batch, units]`: the cell state before the first step (with `carry`).
    pub c0: T,
}

impl<T> RecurrentWorkspace<T> {
    /// Buffers for `batch` sequences of `time` steps of a cell with `gates` blocks of
    /// `units`.
    pub fn new<B: Storage<Buffer = T>>(
        backend: &B,
        batch: usize,
        time: usize,
        units: usize,
        gates: usize,
    ) -> Result<Self> {
        let states = batch * time * units;
        Ok(Self {
            gates: backend.alloc(states * gates)?,
            cells: backend.alloc(states)?,
            hidden: backend.alloc(states)?,
            dhidden: backend.alloc(states)?,
            dcell: backend.alloc(batch * units)?,
            h0: backend.alloc(batch * units)?,
            c0: backend.alloc(batch * units)?,
        })
    }
}

/// The recurrent op.
pub trait RecurrentKernel: Storage {
    /// Runs an LSTM over `p.time` steps: `ws.gates` holds `x W + b` on entry;
    /// `u` is the recurrent kernel `[units, 4 units]`. Leaves the activated gates,
    /// cells and hidden states in `ws`, and writes the output to `y`.
    fn lstm_fwd(
        &self,
        p: &RecurrentParams,
        u: &Self::Buffer,
        ws: &mut RecurrentWorkspace<Self::Buffer>,
        y: &mut Self::Buffer,
    ) -> Result<()>;

    /// Back-propagates `dy` (the output's gradient) through the last
    /// [`RecurrentKernel::lstm_fwd`]: leaves the gradient at the gates'
    /// pre-activations in `ws.gates` and adds the recurrent kernel's gradient to `du`.
    fn lstm_bwd(
        &self,
        p: &RecurrentParams,
        u: &Self::Buffer,
        ws: &mut RecurrentWorkspace<Self::Buffer>,
        dy: &Self::Buffer,
        du: &mut Self::Buffer,
    ) -> Result<()>;

    /// Runs a GRU over `p.time` steps: `ws.gates` holds `x W` (no bias) on entry;
    /// `u` is the recurrent kernel `[units, 3 units]`, `bias` the input bias
    /// `[3 units]`, followed with `reset_after` by the recurrent bias `[3 units]`.
    /// Leaves the activated gates (`z, r, c`), the hidden states and, in `ws.cells`,
    /// the candidate's recurrent part (`reset_after`) or the reset state `r h[t-1]`
    /// in `ws`, and writes the output to `y`.
    fn gru_fwd(
        &self,
        p: &RecurrentParams,
        reset_after: bool,
        u: &Self::Buffer,
        bias: &Self::Buffer,
        ws: &mut RecurrentWorkspace<Self::Buffer>,
        y: &mut Self::Buffer,
    ) -> Result<()>;

    /// Back-propagates `dy` through the last [`RecurrentKernel::gru_fwd`]: leaves the
    /// gradient at the gates' input pre-activations in `ws.gates` and adds the
    /// recurrent kernel's and the biases' gradients to `du` and `dbias`.
    #[allow(clippy::too_many_arguments)]
    fn gru_bwd(
        &self,
        p: &RecurrentParams,
        reset_after: bool,
        u: &Self::Buffer,
        ws: &mut RecurrentWorkspace<Self::Buffer>,
        dy: &Self::Buffer,
        du: &mut Self::Buffer,
        dbias: &mut Self::Buffer,
    ) -> Result<()>;

    /// Runs a simple RNN, `h[t] = tanh(x W + b + h[t-1] U)`: `ws.gates` holds
    /// `x W + b` on entry, `u` is `[units, units]`.
    fn rnn_fwd(
        &self,
        p: &RecurrentParams,
        u: &Self::Buffer,
        ws: &mut RecurrentWorkspace<Self::Buffer>,
        y: &mut Self::Buffer,
    ) -> Result<()>;

    /// Writes (or with `y.accumulate` adds) `x` with its steps in reverse order:
    /// `y[b, time - 1 - t, :] = x[b, t, :]` over `[p.batch, p.time, p.units]` (here
    /// `units` is the width of a step, whatever it holds): a bidirectional layer's
    /// reverse direction reads its input, and gives back its outputs and gradients,
    /// this way.
    fn reverse_time(
        &self,
        p: &RecurrentParams,
        x: &Self::Buffer,
        y: InputGrad<'_, Self::Buffer>,
    ) -> Result<()>;

    /// Back-propagates `dy` through the last [`RecurrentKernel::rnn_fwd`], as
    /// [`RecurrentKernel::lstm_bwd`] does.
    fn rnn_bwd(
        &self,
        p: &RecurrentParams,
        u: &Self::Buffer,
        ws: &mut RecurrentWorkspace<Self::Buffer>,
        dy: &Self::Buffer,
        du: &mut Self::Buffer,
    ) -> Result<()>;
}

/// Values of a GRU's bias: the input bias `[3 units]`, and with `reset_after` the
/// recurrent bias after it (Keras's `[2, 3 units]`).
pub const fn gru_bias_len(units: usize, reset_after: bool) -> usize {
    if reset_after { 6 * units } else { 3 * units }
}

#[cfg(test)]
mod tests;
