//! The time loop on the GPU: launch code for `recurrent.cu`, one launch a step
//! forward and three a step back through time (a GRU without `reset_after`, two and
//! four).

use cudarc::driver::{DeviceRepr, PushKernelArg};

use super::{RecurrentKernel, RecurrentParams, RecurrentWorkspace, gru_bias_len};
use crate::cuda::launch::{driver_err, elementwise};
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::ops::{InputGrad, us};
use crate::storage::Storage;
use crate::{Cuda, CudaBuffer, Result};

/// A step forward: recurrent product, gates, cell.
pub(crate) const FWD: &str = "lstm_fwd_f32";
/// The previous call's last states as this call's initial ones.
pub(crate) const FWD_CARRY: &str = "lstm_carry_fwd_f32";
/// The output gradient spread over the steps.
pub(crate) const BWD_DY: &str = "lstm_dy_bwd_f32";
/// A step back: the gates' gradient and the cell's.
pub(crate) const BWD: &str = "lstm_bwd_f32";
/// A step back: the previous hidden state's gradient.
pub(crate) const BWD_DH: &str = "lstm_dh_bwd_f32";
/// A step back: the recurrent kernel's gradient.
pub(crate) const BWD_DU: &str = "lstm_du_bwd_f32";

/// A GRU step forward (the candidate alone without `reset_after`).
pub(crate) const GRU_FWD: &str = "gru_fwd_f32";
/// Without `reset_after`: the update and reset gates and the reset state.
pub(crate) const GRU_RESET_FWD: &str = "gru_reset_fwd_f32";
/// A GRU step back: the gates' gradients.
pub(crate) const GRU_BWD: &str = "gru_bwd_f32";
/// Without `reset_after`: the reset gate's gradient.
pub(crate) const GRU_RESET_BWD: &str = "gru_reset_bwd_f32";
/// A GRU step back: the previous hidden state's gradient.
pub(crate) const GRU_DH_BWD: &str = "gru_dh_bwd_f32";
/// The GRU's recurrent kernel's gradient, every step at once.
pub(crate) const GRU_DU_BWD: &str = "gru_du_bwd_f32";
/// The GRU's biases' gradients.
pub(crate) const GRU_DB_BWD: &str = "gru_db_bwd_f32";
/// A simple RNN step forward.
pub(crate) const RNN_FWD: &str = "rnn_fwd_f32";
/// A simple RNN step back.
pub(crate) const RNN_BWD: &str = "rnn_bwd_f32";
/// A simple RNN step back: the previous hidden state's gradient.
pub(crate) const RNN_DH_BWD: &str = "rnn_dh_bwd_f32";
/// The simple RNN's recurrent kernel's gradient, every step at once.
pub(crate) const RNN_DU_BWD: &str = "rnn_du_bwd_f32";

/// A sequence with its steps in reverse order.
pub(crate) const REVERSE: &str = "reverse_time_fwd_f32";

/// The recurrent kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "recurrent",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("recurrent.cu")
    ),
    kernels: &[
        FWD,
        FWD_CARRY,
        BWD_DY,
        BWD,
        BWD_DH,
        BWD_DU,
        GRU_FWD,
        GRU_RESET_FWD,
        GRU_BWD,
        GRU_RESET_BWD,
        GRU_DH_BWD,
        GRU_DU_BWD,
        GRU_DB_BWD,
        RNN_FWD,
        RNN_BWD,
        RNN_DH_BWD,
        RNN_DU_BWD,
        REVERSE,
    ],
    fmad: false,
};

// SAFETY: `#[repr(C)]` of five `u32`, matching `struct RecurrentParams` in
// recurrent.cu.
unsafe impl DeviceRepr for RecurrentParams {}

fn check(
    op: &'static str,
    p: &RecurrentParams,
    u: &CudaBuffer,
    ws: &RecurrentWorkspace<CudaBuffer>,
    (name, len): (&'static str, usize),
) -> Result<()> {
    check_gates(op, 4, p, u, ws, (name, len))
}

/// The lengths of a cell with `gates` blocks.
fn check_gates(
    op: &'static str,
    gates: usize,
    p: &RecurrentParams,
    u: &CudaBuffer,
    ws: &RecurrentWorkspace<CudaBuffer>,
    (name, len): (&'static str, usize),
) -> Result<()> {
    let (h, states) = (us(p.units), p.states());
    check_len(op, "u", h * gates * h, u.len())?;
    check_len(op, "gates", states * gates, ws.gates.len())?;
    check_len(op, "cells", states, ws.cells.len())?;
    check_len(op, "hidden", states, ws.hidden.len())?;
    check_len(op, "dhidden", states, ws.dhidden.len())?;
    check_len(op, "dcell", us(p.batch) * h, ws.dcell.len())?;
    check_len(op, "h0", us(p.batch) * h, ws.h0.len())?;
    check_len(op, "c0", us(p.batch) * h, ws.c0.len())?;
    check_len(op, name, p.output(), len)
}

impl Cuda {
    /// With `carry`: the previous call's last states become this call's initial ones.
    fn carry_states(
        &self,
        op: &'static str,
        p: &RecurrentParams,
        ws: &mut RecurrentWorkspace<CudaBuffer>,
    ) -> Result<()> {
        if p.carry == 0 {
            return Ok(());
        }
        let carry = self.function(&MODULE, FWD_CARRY)?;
        let mut args = self.stream().launch_builder(&carry);
        args.arg(p)
            .arg(&ws.cells.data)
            .arg(&ws.hidden.data)
            .arg(&mut ws.c0.data)
            .arg(&mut ws.h0.data);
        // SAFETY: thread `(b, j)` reads the last step of sample `b` and writes its
        // value of `c0` and `h0`; the callers checked the lengths.
        unsafe { args.launch(elementwise(us(p.batch) * us(p.units))) }
            .map_err(|e| driver_err(op, e))?;
        Ok(())
    }

    /// The output's gradient spread over every step's hidden state.
    fn spread_dy(
        &self,
        op: &'static str,
        p: &RecurrentParams,
        dy: &CudaBuffer,
        ws: &mut RecurrentWorkspace<CudaBuffer>,
    ) -> Result<()> {
        let spread = self.function(&MODULE, BWD_DY)?;
        let mut args = self.stream().launch_builder(&spread);
        args.arg(p).arg(&dy.data).arg(&mut ws.dhidden.data);
        // SAFETY: thread `i` writes `dhidden[i]` and reads one value of `dy`, inside
        // the lengths the callers checked.
        unsafe { args.launch(elementwise(p.states())) }.map_err(|e| driver_err(op, e))?;
        Ok(())
    }
}

impl RecurrentKernel for Cuda {
    fn lstm_fwd(
        &self,
        p: &RecurrentParams,
        u: &CudaBuffer,
        ws: &mut RecurrentWorkspace<CudaBuffer>,
        y: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "lstm_fwd";
        check(OP, p, u, ws, ("y", y.len()))?;
        let cells = us(p.batch) * us(p.units);
        if cells == 0 {
            return Ok(());
        }
        self.carry_states(OP, p, ws)?;
        let f = self.function(&MODULE, FWD)?;
        for t in 0..p.time {
            let mut args = self.stream().launch_builder(&f);
            args.arg(p)
                .arg(&t)
                .arg(&u.data)
                .arg(&mut ws.gates.data)
                .arg(&mut ws.cells.data)
                .arg(&mut ws.hidden.data)
                .arg(&ws.c0.data)
                .arg(&ws.h0.data)
                .arg(&mut y.data);
            // SAFETY: thread `(b, j)` reads and writes row `b * time + t` of the
            // gates, cells and hidden states (and reads row `- 1` of the last two),
            // reads `u`, and writes its value of `y`; every length is checked above.
            unsafe { args.launch(elementwise(cells)) }.map_err(|e| driver_err(OP, e))?;
        }
        Ok(())
    }

    fn lstm_bwd(
        &self,
        p: &RecurrentParams,
        u: &CudaBuffer,
        ws: &mut RecurrentWorkspace<CudaBuffer>,
        dy: &CudaBuffer,
        du: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "lstm_bwd";
        check(OP, p, u, ws, ("dy", dy.len()))?;
        let h = us(p.units);
        check_len(OP, "du", h * 4 * h, du.len())?;
        let cells = us(p.batch) * h;
        if cells == 0 || p.time == 0 {
            return Ok(());
        }
        self.fill(&mut ws.dcell, cells, 0.0)?;
        self.spread_dy(OP, p, dy, ws)?;
        let (step, dh, dgrad) = (
            self.function(&MODULE, BWD)?,
            self.function(&MODULE, BWD_DH)?,
            self.function(&MODULE, BWD_DU)?,
        );
        for t in (0..p.time).rev() {
            let mut args = self.stream().launch_builder(&step);
            args.arg(p)
                .arg(&t)
                .arg(&mut ws.gates.data)
                .arg(&ws.cells.data)
                .arg(&ws.c0.data)
                .arg(&ws.dhidden.data)
                .arg(&mut ws.dcell.data);
            // SAFETY: thread `(b, j)` rewrites its four gate values of row
            // `b * time + t`, reads its cells and hidden gradient, and updates its
            // value of `dcell`; lengths checked above.
            unsafe { args.launch(elementwise(cells)) }.map_err(|e| driver_err(OP, e))?;
            if t > 0 || p.carry != 0 {
                let mut args = self.stream().launch_builder(&dgrad);
                args.arg(p)
                    .arg(&t)
                    .arg(&ws.hidden.data)
                    .arg(&ws.h0.data)
                    .arg(&ws.gates.data)
                    .arg(&mut du.data);
                // SAFETY: thread `i < units * 4 units` adds to `du[i]`, reading the
                // hidden states of step `t - 1` (or `h0`) and the gates' gradient of
                // step `t` of every sample; lengths checked above.
                unsafe { args.launch(elementwise(h * 4 * h)) }.map_err(|e| driver_err(OP, e))?;
            }
            if t == 0 {
                break;
            }
            let mut args = self.stream().launch_builder(&dh);
            args.arg(p)
                .arg(&t)
                .arg(&u.data)
                .arg(&ws.gates.data)
                .arg(&mut ws.dhidden.data);
            // SAFETY: thread `(b, q)` reads row `b * time + t` of the gates' gradient
            // and row `q` of `u`, and adds to one value of step `t - 1`'s hidden
            // gradient; lengths checked above.
            unsafe { args.launch(elementwise(cells)) }.map_err(|e| driver_err(OP, e))?;
        }
        Ok(())
    }

    fn gru_fwd(
        &self,
        p: &RecurrentParams,
        reset_after: bool,
        u: &CudaBuffer,
        bias: &CudaBuffer,
        ws: &mut RecurrentWorkspace<CudaBuffer>,
        y: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "gru_fwd";
        check_gates(OP, 3, p, u, ws, ("y", y.len()))?;
        let h = us(p.units);
        check_len(OP, "bias", gru_bias_len(h, reset_after), bias.len())?;
        let cells = us(p.batch) * h;
        if cells == 0 {
            return Ok(());
        }
        self.carry_states(OP, p, ws)?;
        let (f, reset) = (
            self.function(&MODULE, GRU_FWD)?,
            self.function(&MODULE, GRU_RESET_FWD)?,
        );
        let flag = u32::from(reset_after);
        for t in 0..p.time {
            if !reset_after {
                let mut args = self.stream().launch_builder(&reset);
                args.arg(p)
                    .arg(&t)
                    .arg(&u.data)
                    .arg(&bias.data)
                    .arg(&mut ws.gates.data)
                    .arg(&mut ws.cells.data)
                    .arg(&ws.hidden.data)
                    .arg(&ws.h0.data);
                // SAFETY: thread `(b, j)` writes its update and reset gates and its
                // reset state of row `b * time + t`, reading step `t - 1`'s hidden
                // states (or `h0`) and `u`; lengths checked above.
                unsafe { args.launch(elementwise(cells)) }.map_err(|e| driver_err(OP, e))?;
            }
            let mut args = self.stream().launch_builder(&f);
            args.arg(p)
                .arg(&t)
                .arg(&flag)
                .arg(&u.data)
                .arg(&bias.data)
                .arg(&mut ws.gates.data)
                .arg(&mut ws.cells.data)
                .arg(&mut ws.hidden.data)
                .arg(&ws.h0.data)
                .arg(&mut y.data);
            // SAFETY: thread `(b, j)` writes its gates, `cells` value and hidden state
            // of row `b * time + t` (reading the reset states of that row, written by
            // the launch before, and step `t - 1`'s hidden states), and its value of
            // `y`; lengths checked above.
            unsafe { args.launch(elementwise(cells)) }.map_err(|e| driver_err(OP, e))?;
        }
        Ok(())
    }

    fn gru_bwd(
        &self,
        p: &RecurrentParams,
        reset_after: bool,
        u: &CudaBuffer,
        ws: &mut RecurrentWorkspace<CudaBuffer>,
        dy: &CudaBuffer,
        du: &mut CudaBuffer,
        dbias: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "gru_bwd";
        check_gates(OP, 3, p, u, ws, ("dy", dy.len()))?;
        let h = us(p.units);
        check_len(OP, "du", h * 3 * h, du.len())?;
        check_len(OP, "dbias", gru_bias_len(h, reset_after), dbias.len())?;
        let cells = us(p.batch) * h;
        if cells == 0 || p.time == 0 {
            return Ok(());
        }
        self.spread_dy(OP, p, dy, ws)?;
        let flag = u32::from(reset_after);
        let (step, reset, dh) = (
            self.function(&MODULE, GRU_BWD)?,
            self.function(&MODULE, GRU_RESET_BWD)?,
            self.function(&MODULE, GRU_DH_BWD)?,
        );
        for t in (0..p.time).rev() {
            let mut args = self.stream().launch_builder(&step);
            args.arg(p)
                .arg(&t)
                .arg(&flag)
                .arg(&mut ws.gates.data)
                .arg(&mut ws.cells.data)
                .arg(&ws.hidden.data)
                .arg(&ws.h0.data)
                .arg(&mut ws.dhidden.data);
            // SAFETY: thread `(b, j)` rewrites its gate values and `cells` value of
            // row `b * time + t` and adds to its value of row `- 1` of `dhidden`;
            // lengths checked above.
            unsafe { args.launch(elementwise(cells)) }.map_err(|e| driver_err(OP, e))?;
            if !reset_after {
                let mut args = self.stream().launch_builder(&reset);
                args.arg(p)
                    .arg(&t)
                    .arg(&u.data)
                    .arg(&mut ws.gates.data)
                    .arg(&ws.hidden.data)
                    .arg(&ws.h0.data)
                    .arg(&mut ws.dhidden.data);
                // SAFETY: thread `(b, j)` reads the candidate gradients of row
                // `b * time + t`, rewrites its reset gate there and adds to its value
                // of row `- 1` of `dhidden`; lengths checked above.
                unsafe { args.launch(elementwise(cells)) }.map_err(|e| driver_err(OP, e))?;
            }
            if t == 0 {
                break;
            }
            let mut args = self.stream().launch_builder(&dh);
            args.arg(p)
                .arg(&t)
                .arg(&flag)
                .arg(&u.data)
                .arg(&ws.gates.data)
                .arg(&ws.cells.data)
                .arg(&mut ws.dhidden.data);
            // SAFETY: thread `(b, q)` reads row `b * time + t` of the gradients and
            // row `q` of `u`, and adds to one value of step `t - 1`'s hidden
            // gradient; lengths checked above.
            unsafe { args.launch(elementwise(cells)) }.map_err(|e| driver_err(OP, e))?;
        }
        let dgrad = self.function(&MODULE, GRU_DU_BWD)?;
        let mut args = self.stream().launch_builder(&dgrad);
        args.arg(p)
            .arg(&flag)
            .arg(&ws.hidden.data)
            .arg(&ws.h0.data)
            .arg(&ws.gates.data)
            .arg(&ws.cells.data)
            .arg(&mut du.data);
        // SAFETY: thread `i < units * 3 units` adds to `du[i]`, reading every step;
        // lengths checked above.
        unsafe { args.launch(elementwise(h * 3 * h)) }.map_err(|e| driver_err(OP, e))?;
        let dbias_fn = self.function(&MODULE, GRU_DB_BWD)?;
        let mut args = self.stream().launch_builder(&dbias_fn);
        args.arg(p)
            .arg(&flag)
            .arg(&ws.gates.data)
            .arg(&ws.cells.data)
            .arg(&mut dbias.data);
        // SAFETY: thread `k` adds to `dbias[k]`, reading column `k` of every step;
        // lengths checked above.
        unsafe { args.launch(elementwise(gru_bias_len(h, reset_after))) }
            .map_err(|e| driver_err(OP, e))?;
        Ok(())
    }

    fn rnn_fwd(
        &self,
        p: &RecurrentParams,
        u: &CudaBuffer,
        ws: &mut RecurrentWorkspace<CudaBuffer>,
        y: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "rnn_fwd";
        check_gates(OP, 1, p, u, ws, ("y", y.len()))?;
        let cells = us(p.batch) * us(p.units);
        if cells == 0 {
            return Ok(());
        }
        self.carry_states(OP, p, ws)?;
        let f = self.function(&MODULE, RNN_FWD)?;
        for t in 0..p.time {
            let mut args = self.stream().launch_builder(&f);
            args.arg(p)
                .arg(&t)
                .arg(&u.data)
                .arg(&mut ws.gates.data)
                .arg(&mut ws.hidden.data)
                .arg(&ws.h0.data)
                .arg(&mut y.data);
            // SAFETY: thread `(b, j)` writes its value of row `b * time + t` of the
            // gates and hidden states, reading step `t - 1`'s, and its value of `y`;
            // lengths checked above.
            unsafe { args.launch(elementwise(cells)) }.map_err(|e| driver_err(OP, e))?;
        }
        Ok(())
    }

    fn rnn_bwd(
        &self,
        p: &RecurrentParams,
        u: &CudaBuffer,
        ws: &mut RecurrentWorkspace<CudaBuffer>,
        dy: &CudaBuffer,
        du: &mut CudaBuffer,
    ) -> Result<()> {
        const OP: &str = "rnn_bwd";
        check_gates(OP, 1, p, u, ws, ("dy", dy.len()))?;
        let h = us(p.units);
        check_len(OP, "du", h * h, du.len())?;
        let cells = us(p.batch) * h;
        if cells == 0 || p.time == 0 {
            return Ok(());
        }
        self.spread_dy(OP, p, dy, ws)?;
        let (step, dh) = (
            self.function(&MODULE, RNN_BWD)?,
            self.function(&MODULE, RNN_DH_BWD)?,
        );
        for t in (0..p.time).rev() {
            let mut args = self.stream().launch_builder(&step);
            args.arg(p)
                .arg(&t)
                .arg(&mut ws.gates.data)
                .arg(&ws.dhidden.data);
            // SAFETY: thread `(b, j)` rewrites one value of row `b * time + t`;
            // lengths checked above.
            unsafe { args.launch(elementwise(cells)) }.map_err(|e| driver_err(OP, e))?;
            if t == 0 {
                break;
            }
            let mut args = self.stream().launch_builder(&dh);
            args.arg(p)
                .arg(&t)
                .arg(&u.data)
                .arg(&ws.gates.data)
                .arg(&mut ws.dhidden.data);
            // SAFETY: thread `(b, q)` adds to one value of step `t - 1`'s hidden
            // gradient, reading row `b * time + t` and row `q` of `u`; lengths
            // checked above.
            unsafe { args.launch(elementwise(cells)) }.map_err(|e| driver_err(OP, e))?;
        }
        let dgrad = self.function(&MODULE, RNN_DU_BWD)?;
        let mut args = self.stream().launch_builder(&dgrad);
        args.arg(p)
            .arg(&ws.hidden.data)
            .arg(&ws.h0.data)
            .arg(&ws.gates.data)
            .arg(&mut du.data);
        // SAFETY: thread `i < units * units` adds to `du[i]`, reading every step;
        // lengths checked above.
        unsafe { args.launch(elementwise(h * h)) }.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }

    fn reverse_time(
        &self,
        p: &RecurrentParams,
        x: &CudaBuffer,
        y: InputGrad<'_, CudaBuffer>,
    ) -> Result<()> {
        const OP: &str = "reverse_time";
        check_len(OP, "x", p.states(), x.len())?;
        check_len(OP, "y", p.states(), y.buffer.len())?;
        if p.states() == 0 {
            return Ok(());
        }
        let f = self.function(&MODULE, REVERSE)?;
        let accumulate = u32::from(y.accumulate);
        let mut args = self.stream().launch_builder(&f);
        args.arg(p).arg(&accumulate).arg(&x.data).arg(&mut y.buffer.data);
        // SAFETY: thread `i` writes `y[i]` and reads one value of `x`, inside the
        // lengths checked above.
        unsafe { args.launch(elementwise(p.states())) }.map_err(|e| driver_err(OP, e))?;
        Ok(())
    }
}
