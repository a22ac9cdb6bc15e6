//! The time loop on the GPU: launch code for `recurrent.cu`, one launch a step
//! forward and three a step back through time.

use cudarc::driver::{DeviceRepr, PushKernelArg};

use super::{RecurrentKernel, RecurrentParams, RecurrentWorkspace};
use crate::cuda::launch::{driver_err, elementwise};
use crate::cuda::module::KernelSource;
use crate::error::check_len;
use crate::ops::us;
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

/// The recurrent kernels.
pub(crate) const MODULE: KernelSource = KernelSource {
    name: "recurrent",
    code: concat!(
        include_str!("../../cuda/prelude.cuh"),
        include_str!("recurrent.cu")
    ),
    kernels: &[FWD, FWD_CARRY, BWD_DY, BWD, BWD_DH, BWD_DU],
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
    let (h, states) = (us(p.units), p.states());
    check_len(op, "u", h * 4 * h, u.len())?;
    check_len(op, "gates", states * 4, ws.gates.len())?;
    check_len(op, "cells", states, ws.cells.len())?;
    check_len(op, "hidden", states, ws.hidden.len())?;
    check_len(op, "dhidden", states, ws.dhidden.len())?;
    check_len(op, "dcell", us(p.batch) * h, ws.dcell.len())?;
    check_len(op, "h0", us(p.batch) * h, ws.h0.len())?;
    check_len(op, "c0", us(p.batch) * h, ws.c0.len())?;
    check_len(op, name, p.output(), len)
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
        if p.carry != 0 {
            let carry = self.function(&MODULE, FWD_CARRY)?;
            let mut args = self.stream().launch_builder(&carry);
            args.arg(p)
                .arg(&ws.cells.data)
                .arg(&ws.hidden.data)
                .arg(&mut ws.c0.data)
                .arg(&mut ws.h0.data);
            // SAFETY: thread `(b, j)` reads the last step of sample `b` and writes
            // its value of `c0` and `h0`; lengths checked above.
            unsafe { args.launch(elementwise(cells)) }.map_err(|e| driver_err(OP, e))?;
        }
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
        let spread = self.function(&MODULE, BWD_DY)?;
        let mut args = self.stream().launch_builder(&spread);
        args.arg(p).arg(&dy.data).arg(&mut ws.dhidden.data);
        // SAFETY: thread `i` writes `dhidden[i]` and reads one value of `dy`, inside
        // the checked lengths.
        unsafe { args.launch(elementwise(p.states())) }.map_err(|e| driver_err(OP, e))?;
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
}
