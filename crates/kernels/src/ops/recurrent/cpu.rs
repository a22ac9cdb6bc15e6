//! The time loop on the CPU: each step's recurrent product through the packed SGEMM
//! on strided views of the batch-major sequences, then the cell's gates one sample a
//! task on the thread pool.

use super::{RecurrentKernel, RecurrentParams, RecurrentWorkspace, gru_bias_len};
use crate::cpu::SendPtr;
use crate::cpu::gemm::{MatMut, MatRef, sgemm};
use crate::error::check_len;
use crate::ops::{InputGrad, us};
use crate::{Cpu, CpuBuffer, Result};

/// `e^x`, to about two ulp over `[-87, 88]` (clamped there, so never infinite nor
/// subnormal), in branch-free arithmetic the compiler vectorises: the cells' loops
/// over units then run several values at a time, where libm's `expf` and `tanhf`
/// are a call each (the LSTM's step spent a quarter of its time in them).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts (Cody and Waite), the first exact in a few bits, so that
    // `x - n ln 2` loses nothing.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    // e^r for |r| <= ln 2 / 2: Taylor to degree 7 (the next term is below 2^-30).
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // 2^n from its exponent bits: n lies in [-126, 127], a normal number, and sits in
    // the low bits of `shifted` (whose bits are ROUND's plus n), integer arithmetic
    // that vectorises where a float-to-integer cast would not.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    p * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh(x) = (1 - e^-2|x|) / (1 + e^-2|x|)` with the sign of `x`: within 1e-7 of
/// the true value (absolute), vectorised as [`exp`] is.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// Sizes of one call, in elements.
#[derive(Clone, Copy)]
struct Dims {
    batch: usize,
    time: usize,
    units: usize,
    gates: usize,
}

impl Dims {
    fn of(p: &RecurrentParams, gates: usize) -> Self {
        Self {
            batch: us(p.batch),
            time: us(p.time),
            units: us(p.units),
            gates,
        }
    }

    fn width(&self) -> usize {
        self.gates * self.units
    }

    /// Step `t` of a `[batch, time, cols]` sequence: `batch` rows, `time * cols` apart.
    fn step<'a>(&self, data: &'a [f32], t: usize, cols: usize) -> MatRef<'a> {
        MatRef {
            data: &data[t * cols..],
            rows: self.batch,
            cols,
            row_stride: self.time * cols,
            col_stride: 1,
        }
    }

    /// The hidden states before step `t`: step `t - 1`'s, or `h0` before the first.
    fn previous<'a>(&self, hidden: &'a CpuBuffer, h0: &'a CpuBuffer, t: usize) -> MatRef<'a> {
        if t > 0 {
            self.step(hidden.as_slice(), t - 1, self.units)
        } else {
            MatRef::row_major(h0.as_slice(), self.batch, self.units)
        }
    }

    /// Columns `start .. start + n` of step `t` of a `[batch, time, width]` sequence.
    fn block<'a>(
        &self,
        data: &'a [f32],
        t: usize,
        width: usize,
        (start, n): (usize, usize),
    ) -> MatRef<'a> {
        MatRef {
            data: &data[t * width + start..],
            rows: self.batch,
            cols: n,
            row_stride: self.time * width,
            col_stride: 1,
        }
    }

    fn block_mut<'a>(
        &self,
        data: &'a mut [f32],
        t: usize,
        width: usize,
        (start, n): (usize, usize),
    ) -> MatMut<'a> {
        MatMut {
            data: &mut data[t * width + start..],
            rows: self.batch,
            cols: n,
            row_stride: self.time * width,
        }
    }

    fn step_mut<'a>(&self, data: &'a mut [f32], t: usize, cols: usize) -> MatMut<'a> {
        MatMut {
            data: &mut data[t * cols..],
            rows: self.batch,
            cols,
            row_stride: self.time * cols,
        }
    }
}

fn check(
    op: &'static str,
    d: Dims,
    u: &CpuBuffer,
    ws: &RecurrentWorkspace<CpuBuffer>,
    y: (&'static str, usize, usize),
) -> Result<()> {
    let states = d.batch * d.time * d.units;
    check_len(op, "u", d.units * d.width(), u.as_slice().len())?;
    check_len(op, "gates", states * d.gates, ws.gates.as_slice().len())?;
    check_len(op, "cells", states, ws.cells.as_slice().len())?;
    check_len(op, "hidden", states, ws.hidden.as_slice().len())?;
    check_len(op, "dhidden", states, ws.dhidden.as_slice().len())?;
    check_len(op, "dcell", d.batch * d.units, ws.dcell.as_slice().len())?;
    check_len(op, "h0", d.batch * d.units, ws.h0.as_slice().len())?;
    check_len(op, "c0", d.batch * d.units, ws.c0.as_slice().len())?;
    check_len(op, y.0, y.1, y.2)
}

/// With `carry`: the previous call's last step becomes this call's initial state
/// (the hidden state, and the cell state when `cell`).
fn carry_states(d: Dims, ws: &mut RecurrentWorkspace<CpuBuffer>, cell: bool) {
    let h = d.units;
    let pairs = [(&mut ws.h0, &ws.hidden), (&mut ws.c0, &ws.cells)];
    for (dst, src) in pairs.into_iter().take(if cell { 2 } else { 1 }) {
        let (dst, src) = (dst.as_mut_slice(), src.as_slice());
        for (b, row) in dst[..d.batch * h].chunks_exact_mut(h.max(1)).enumerate() {
            let last = (b * d.time + d.time - 1) * h;
            row.copy_from_slice(&src[last..last + h]);
        }
    }
}

/// The output: every step's hidden state, or the last step's.
fn write_output(
    p: &RecurrentParams,
    d: Dims,
    ws: &RecurrentWorkspace<CpuBuffer>,
    y: &mut CpuBuffer,
) {
    let h = d.units;
    let hs = ws.hidden.as_slice();
    let y = y.as_mut_slice();
    if p.return_sequences != 0 {
        y[..p.states()].copy_from_slice(&hs[..p.states()]);
    } else {
        for (b, out) in y[..d.batch * h].chunks_exact_mut(h.max(1)).enumerate() {
            let last = (b * d.time + d.time - 1) * h;
            out.copy_from_slice(&hs[last..last + h]);
        }
    }
}

/// The output's gradient spread over every step's hidden state (zero off the last
/// step when only the last is returned).
fn spread_dy(p: &RecurrentParams, d: Dims, ws: &mut RecurrentWorkspace<CpuBuffer>, dy: &CpuBuffer) {
    let h = d.units;
    let states = p.states();
    let dh = &mut ws.dhidden.as_mut_slice()[..states];
    let dy = dy.as_slice();
    if p.return_sequences != 0 {
        dh.copy_from_slice(&dy[..states]);
    } else {
        dh.fill(0.0);
        for (b, g) in dy[..d.batch * h].chunks_exact(h.max(1)).enumerate() {
            let last = (b * d.time + d.time - 1) * h;
            dh[last..last + h].copy_from_slice(g);
        }
    }
}

/// Once the loop back through time is done the hidden gradients are spent: their
/// buffer takes each step's previous state (h0 or zero before the first), so that a
/// recurrent kernel's gradient is one product along K = batch * time.
fn previous_states(d: Dims, ws: &mut RecurrentWorkspace<CpuBuffer>, carry: bool) {
    let h = d.units;
    let hidden = ws.hidden.as_slice();
    let h0 = ws.h0.as_slice();
    let prev = &mut ws.dhidden.as_mut_slice()[..d.batch * d.time * h];
    for (row, out) in prev.chunks_exact_mut(h.max(1)).enumerate() {
        let (b, t) = (row / d.time, row % d.time);
        if t > 0 {
            out.copy_from_slice(&hidden[(row - 1) * h..row * h]);
        } else if carry {
            out.copy_from_slice(&h0[b * h..b * h + h]);
        } else {
            out.fill(0.0);
        }
    }
}

/// Columns `cols.0 ..` (`cols.1` of them) of a `[rows, width]` buffer.
fn columns(data: &[f32], rows: usize, width: usize, (start, n): (usize, usize)) -> MatRef<'_> {
    MatRef {
        data: &data[start..],
        rows,
        cols: n,
        row_stride: width,
        col_stride: 1,
    }
}

fn columns_mut(
    data: &mut [f32],
    rows: usize,
    width: usize,
    (start, n): (usize, usize),
) -> MatMut<'_> {
    MatMut {
        data: &mut data[start..],
        rows,
        cols: n,
        row_stride: width,
    }
}

/// `out[c] += sum_r data[r * width + start + c]` for the `n` columns from `start`.
fn add_column_sums(
    d: Dims,
    data: &[f32],
    width: usize,
    (start, n): (usize, usize),
    out: &mut [f32],
) {
    for row in data[..d.batch * d.time * width].chunks_exact(width.max(1)) {
        for (o, v) in out[..n].iter_mut().zip(&row[start..start + n]) {
            *o += v;
        }
    }
}

impl Cpu {
    /// Columns `cols` of a recurrent kernel's gradient (`[units, width]`):
    /// `du[:, cols] += a^T g[:, cols]`, `a` `[batch * time, units]` and `g`
    /// `[batch * time, g_width]` whose columns from `g_start` are taken.
    fn kernel_grad(
        &self,
        d: Dims,
        a: &CpuBuffer,
        (g, g_width, g_start): (&CpuBuffer, usize, usize),
        cols: (usize, usize),
        du: &mut CpuBuffer,
    ) {
        let rows = d.batch * d.time;
        sgemm(
            self.inner(),
            1.0,
            MatRef::row_major(&a.as_slice()[..rows * d.units], rows, d.units).t(),
            columns(g.as_slice(), rows, g_width, (g_start, cols.1)),
            1.0,
            columns_mut(du.as_mut_slice(), d.units, d.width(), cols),
        );
    }

    /// Runs `f` on the rows of step `t` of each sample on the pool.
    fn each_sample(
        &self,
        d: Dims,
        t: usize,
        carry: bool,
        ws: &mut RecurrentWorkspace<CpuBuffer>,
        f: &(dyn Fn(Rows<'_>) + Sync),
    ) {
        let (h, w) = (d.units, d.width());
        let gates = SendPtr(ws.gates.as_mut_slice().as_mut_ptr());
        let aux = SendPtr(ws.cells.as_mut_slice().as_mut_ptr());
        let hidden = SendPtr(ws.hidden.as_mut_slice().as_mut_ptr());
        let dhidden = SendPtr(ws.dhidden.as_mut_slice().as_mut_ptr());
        let scratch = SendPtr(ws.dcell.as_mut_slice().as_mut_ptr());
        let h0 = ws.h0.as_slice();
        self.per_sample(d.batch, &|b| {
            let row = b * d.time + t;
            // SAFETY: sample `b` owns rows `b * time ..` of each sequence buffer and
            // row `b` of the scratch; tasks are distinct samples, rows `t` and
            // `t - 1` are distinct, and the buffers are exclusively borrowed
            // (checked long enough by the caller) for the duration of `run`.
            let rows = unsafe {
                Rows {
                    g: std::slice::from_raw_parts_mut(gates.get().add(row * w), w),
                    aux: std::slice::from_raw_parts_mut(aux.get().add(row * h), h),
                    hid: std::slice::from_raw_parts_mut(hidden.get().add(row * h), h),
                    prev: if t > 0 {
                        Some(std::slice::from_raw_parts(
                            hidden.get().add((row - 1) * h),
                            h,
                        ))
                    } else {
                        carry.then(|| &h0[b * h..b * h + h])
                    },
                    dh: std::slice::from_raw_parts(dhidden.get().add(row * h), h),
                    dh_prev: (t > 0).then(|| {
                        std::slice::from_raw_parts_mut(dhidden.get().add((row - 1) * h), h)
                    }),
                    scratch: std::slice::from_raw_parts_mut(scratch.get().add(b * h), h),
                }
            };
            f(rows);
        });
    }

    /// Runs `f(b)` for each sample `b` of the batch on the pool.
    fn per_sample(&self, batch: usize, f: &(dyn Fn(usize) + Sync)) {
        self.inner().pool.run(batch, &|b, _| f(b));
    }
}

/// One sample's rows at step `t`, for a cell's gates.
struct Rows<'a> {
    /// The gates (`gates * units`).
    g: &'a mut [f32],
    /// The cell's own state or scratch of the step (`cells`).
    aux: &'a mut [f32],
    /// The hidden state of the step.
    hid: &'a mut [f32],
    /// The hidden state before the step: `None` when it is zero.
    prev: Option<&'a [f32]>,
    /// The gradient reaching the step's hidden state.
    dh: &'a [f32],
    /// The gradient reaching the previous step's (`None` before the first).
    dh_prev: Option<&'a mut [f32]>,
    /// The sample's row of `dcell`.
    scratch: &'a mut [f32],
}

impl Rows<'_> {
    fn prev(&self, j: usize) -> f32 {
        self.prev.map_or(0.0, |p| p[j])
    }
}

/// The LSTM cell on one sample's step: `g` holds the step's pre-activations `[i, f,
/// g, o]` and gets the gates; `c` and `hid` get the cell and hidden states.
fn lstm_cell(g: &mut [f32], c: &mut [f32], hid: &mut [f32], c_prev: Option<&[f32]>) {
    match c_prev {
        Some(p) => {
            let p = &p[..c.len()];
            lstm_cell_with(g, c, hid, |j| p[j]);
        }
        None => lstm_cell_with(g, c, hid, |_| 0.0),
    }
}

/// [`lstm_cell`] with the previous cell state as a function of the unit, inlined: a
/// loop over slices cut to one length, with no index checks left and no call, so
/// that it vectorises.
#[inline(always)]
fn lstm_cell_with(g: &mut [f32], c: &mut [f32], hid: &mut [f32], prev: impl Fn(usize) -> f32) {
    let h = c.len();
    let (gi, rest) = g.split_at_mut(h);
    let (gf, rest) = rest.split_at_mut(h);
    let (gc, go) = rest.split_at_mut(h);
    let (go, hid) = (&mut go[..h], &mut hid[..h]);
    for j in 0..h {
        let (i, f, gg, o) = (
            sigmoid(gi[j]),
            sigmoid(gf[j]),
            tanh(gc[j]),
            sigmoid(go[j]),
        );
        let cj = f * prev(j) + i * gg;
        c[j] = cj;
        hid[j] = o * tanh(cj);
        (gi[j], gf[j], gc[j], go[j]) = (i, f, gg, o);
    }
}

/// Back through [`lstm_cell`]: `g` holds the gates and gets their pre-activations'
/// gradients; `dc` holds the gradient reaching the cell state from the next step and
/// gets the one to the previous step.
fn lstm_cell_bwd(g: &mut [f32], dc: &mut [f32], dh: &[f32], c: &[f32], c_prev: Option<&[f32]>) {
    match c_prev {
        Some(p) => {
            let p = &p[..c.len()];
            lstm_cell_bwd_with(g, dc, dh, c, |j| p[j]);
        }
        None => lstm_cell_bwd_with(g, dc, dh, c, |_| 0.0),
    }
}

/// [`lstm_cell_bwd`], inlined as [`lstm_cell_with`] is.
#[inline(always)]
fn lstm_cell_bwd_with(
    g: &mut [f32],
    dc: &mut [f32],
    dh: &[f32],
    c: &[f32],
    prev: impl Fn(usize) -> f32,
) {
    let h = c.len();
    let (gi, rest) = g.split_at_mut(h);
    let (gf, rest) = rest.split_at_mut(h);
    let (gc, go) = rest.split_at_mut(h);
    let (go, dc, dh) = (&mut go[..h], &mut dc[..h], &dh[..h]);
    for j in 0..h {
        let (i, f, gg, o) = (gi[j], gf[j], gc[j], go[j]);
        let tc = tanh(c[j]);
        let dcj = dc[j] + dh[j] * o * (1.0 - tc * tc);
        gi[j] = dcj * gg * i * (1.0 - i);
        gf[j] = dcj * prev(j) * f * (1.0 - f);
        gc[j] = dcj * i * (1.0 - gg * gg);
        go[j] = dh[j] * tc * o * (1.0 - o);
        dc[j] = dcj * f;
    }
}

impl RecurrentKernel for Cpu {
    fn lstm_fwd(
        &self,
        p: &RecurrentParams,
        u: &CpuBuffer,
        ws: &mut RecurrentWorkspace<CpuBuffer>,
        y: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "lstm_fwd";
        let d = Dims::of(p, 4);
        check(OP, d, u, ws, ("y", p.output(), y.as_slice().len()))?;
        let (h, w) = (d.units, d.width());
        let carry = p.carry != 0;
        if carry {
            carry_states(d, ws, true);
        }
        let u = MatRef::row_major(u.as_slice(), h, w);
        for t in 0..d.time {
            if t > 0 || carry {
                let prev = d.previous(&ws.hidden, &ws.h0, t);
                sgemm(
                    self.inner(),
                    1.0,
                    prev,
                    u,
                    1.0,
                    d.step_mut(ws.gates.as_mut_slice(), t, w),
                );
            }
            let c0 = carry.then(|| ws.c0.as_slice());
            let gates = SendPtr(ws.gates.as_mut_slice().as_mut_ptr());
            let cells = SendPtr(ws.cells.as_mut_slice().as_mut_ptr());
            let hidden = SendPtr(ws.hidden.as_mut_slice().as_mut_ptr());
            self.per_sample(d.batch, &|b| {
                let row = b * d.time + t;
                // SAFETY: sample `b` owns rows `b * time ..` of each buffer; tasks
                // are distinct samples, and the buffers are exclusively borrowed
                // (checked long enough above) for the duration of `run`.
                let (g, c, c_prev, hid) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(gates.get().add(row * w), w),
                        std::slice::from_raw_parts_mut(cells.get().add(row * h), h),
                        if t > 0 {
                            Some(std::slice::from_raw_parts(
                                cells.get().add((row - 1) * h),
                                h,
                            ))
                        } else {
                            c0.map(|c| &c[b * h..b * h + h])
                        },
                        std::slice::from_raw_parts_mut(hidden.get().add(row * h), h),
                    )
                };
                lstm_cell(g, c, hid, c_prev);
            });
        }
        write_output(p, d, ws, y);
        Ok(())
    }

    fn lstm_bwd(
        &self,
        p: &RecurrentParams,
        u: &CpuBuffer,
        ws: &mut RecurrentWorkspace<CpuBuffer>,
        dy: &CpuBuffer,
        du: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "lstm_bwd";
        let d = Dims::of(p, 4);
        check(OP, d, u, ws, ("dy", p.output(), dy.as_slice().len()))?;
        check_len(OP, "du", d.units * d.width(), du.as_slice().len())?;
        let (h, w) = (d.units, d.width());
        spread_dy(p, d, ws, dy);
        ws.dcell.as_mut_slice()[..d.batch * h].fill(0.0);
        let u = MatRef::row_major(u.as_slice(), h, w);
        let carry = p.carry != 0;
        for t in (0..d.time).rev() {
            let gates = SendPtr(ws.gates.as_mut_slice().as_mut_ptr());
            let dcell = SendPtr(ws.dcell.as_mut_slice().as_mut_ptr());
            let dhidden = SendPtr(ws.dhidden.as_mut_slice().as_mut_ptr());
            let cells = ws.cells.as_slice();
            let c0 = carry.then(|| ws.c0.as_slice());
            self.per_sample(d.batch, &|b| {
                let row = b * d.time + t;
                // SAFETY: as in the forward pass, sample `b` owns its rows of each
                // buffer (and its row of `dcell`); tasks are distinct samples.
                let (g, dc, dh) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(gates.get().add(row * w), w),
                        std::slice::from_raw_parts_mut(dcell.get().add(b * h), h),
                        std::slice::from_raw_parts(dhidden.get().add(row * h), h),
                    )
                };
                let c = &cells[row * h..row * h + h];
                let c_prev = if t > 0 {
                    Some(&cells[(row - 1) * h..row * h])
                } else {
                    c0.map(|c| &c[b * h..b * h + h])
                };
                lstm_cell_bwd(g, dc, dh, c, c_prev);
            });
            if t > 0 {
                let dg = ws.gates.as_slice();
                // dh[t-1] += dG[t] U^T.
                sgemm(
                    self.inner(),
                    1.0,
                    d.step(dg, t, w),
                    u.t(),
                    1.0,
                    d.step_mut(ws.dhidden.as_mut_slice(), t - 1, h),
                );
            }
        }
        // dU += sum over steps of h[t-1]^T dG[t], as one product over every step.
        previous_states(d, ws, carry);
        self.kernel_grad(d, &ws.dhidden, (&ws.gates, w, 0), (0, w), du);
        Ok(())
    }

    fn gru_fwd(
        &self,
        p: &RecurrentParams,
        reset_after: bool,
        u: &CpuBuffer,
        bias: &CpuBuffer,
        ws: &mut RecurrentWorkspace<CpuBuffer>,
        y: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "gru_fwd";
        let d = Dims::of(p, 3);
        check(OP, d, u, ws, ("y", p.output(), y.as_slice().len()))?;
        let (h, w) = (d.units, d.width());
        check_len(
            OP,
            "bias",
            gru_bias_len(h, reset_after),
            bias.as_slice().len(),
        )?;
        let carry = p.carry != 0;
        if carry {
            carry_states(d, ws, false);
        }
        let (zr, n) = ((0, 2 * h), (2 * h, h));
        let u = u.as_slice();
        let (b_in, b_rec) = bias.as_slice().split_at(w);
        for t in 0..d.time {
            let has_prev = t > 0 || carry;
            if has_prev {
                let prev = d.previous(&ws.hidden, &ws.h0, t);
                let gates = d.block_mut(ws.gates.as_mut_slice(), t, w, zr);
                sgemm(self.inner(), 1.0, prev, columns(u, h, w, zr), 1.0, gates);
                if reset_after {
                    let aux = d.step_mut(ws.cells.as_mut_slice(), t, h);
                    sgemm(self.inner(), 1.0, prev, columns(u, h, w, n), 0.0, aux);
                }
            }
            let rec = |k: usize| if reset_after { b_rec[k] } else { 0.0 };
            self.each_sample(d, t, carry, ws, &|r| {
                for j in 0..h {
                    let z = sigmoid(r.g[j] + b_in[j] + rec(j));
                    let rg = sigmoid(r.g[h + j] + b_in[h + j] + rec(h + j));
                    r.g[j] = z;
                    r.g[h + j] = rg;
                    if reset_after {
                        // The candidate's recurrent part, before the reset gate.
                        let a = if has_prev { r.aux[j] } else { 0.0 } + b_rec[2 * h + j];
                        r.aux[j] = a;
                        let c = tanh(r.g[2 * h + j] + b_in[2 * h + j] + rg * a);
                        r.g[2 * h + j] = c;
                        r.hid[j] = z * r.prev(j) + (1.0 - z) * c;
                    } else {
                        // The reset state, whose product the candidate adds.
                        r.aux[j] = rg * r.prev(j);
                    }
                }
            });
            if !reset_after {
                if has_prev {
                    let aux = d.step(ws.cells.as_slice(), t, h);
                    let gates = d.block_mut(ws.gates.as_mut_slice(), t, w, n);
                    sgemm(self.inner(), 1.0, aux, columns(u, h, w, n), 1.0, gates);
                }
                self.each_sample(d, t, carry, ws, &|r| {
                    for j in 0..h {
                        let z = r.g[j];
                        let c = tanh(r.g[2 * h + j] + b_in[2 * h + j]);
                        r.g[2 * h + j] = c;
                        r.hid[j] = z * r.prev(j) + (1.0 - z) * c;
                    }
                });
            }
        }
        write_output(p, d, ws, y);
        Ok(())
    }

    fn gru_bwd(
        &self,
        p: &RecurrentParams,
        reset_after: bool,
        u: &CpuBuffer,
        ws: &mut RecurrentWorkspace<CpuBuffer>,
        dy: &CpuBuffer,
        du: &mut CpuBuffer,
        dbias: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "gru_bwd";
        let d = Dims::of(p, 3);
        check(OP, d, u, ws, ("dy", p.output(), dy.as_slice().len()))?;
        let (h, w) = (d.units, d.width());
        check_len(OP, "du", h * w, du.as_slice().len())?;
        check_len(
            OP,
            "dbias",
            gru_bias_len(h, reset_after),
            dbias.as_slice().len(),
        )?;
        spread_dy(p, d, ws, dy);
        let carry = p.carry != 0;
        let (zr, n) = ((0, 2 * h), (2 * h, h));
        let u = u.as_slice();
        for t in (0..d.time).rev() {
            self.each_sample(d, t, carry, ws, &|mut r| {
                for j in 0..h {
                    let (z, rg, c) = (r.g[j], r.g[h + j], r.g[2 * h + j]);
                    let dh = r.dh[j];
                    let dc = dh * (1.0 - z) * (1.0 - c * c);
                    r.g[j] = dh * (r.prev(j) - c) * z * (1.0 - z);
                    r.g[2 * h + j] = dc;
                    if reset_after {
                        r.g[h + j] = dc * r.aux[j] * rg * (1.0 - rg);
                        // The gradient at the candidate's recurrent part.
                        r.aux[j] = dc * rg;
                    }
                    if let Some(dp) = r.dh_prev.as_deref_mut() {
                        dp[j] += dh * z;
                    }
                }
            });
            if !reset_after {
                // The reset state's gradient, dC U_n^T, one row a sample.
                sgemm(
                    self.inner(),
                    1.0,
                    d.block(ws.gates.as_slice(), t, w, n),
                    columns(u, h, w, n).t(),
                    0.0,
                    MatMut::row_major(&mut ws.dcell.as_mut_slice()[..d.batch * h], d.batch, h),
                );
                self.each_sample(d, t, carry, ws, &|mut r| {
                    for j in 0..h {
                        let rg = r.g[h + j];
                        let ds = r.scratch[j];
                        r.g[h + j] = ds * r.prev(j) * rg * (1.0 - rg);
                        if let Some(dp) = r.dh_prev.as_deref_mut() {
                            dp[j] += ds * rg;
                        }
                    }
                });
            }
            if t > 0 {
                let dgates = d.block(ws.gates.as_slice(), t, w, zr);
                let dprev = d.step_mut(ws.dhidden.as_mut_slice(), t - 1, h);
                sgemm(
                    self.inner(),
                    1.0,
                    dgates,
                    columns(u, h, w, zr).t(),
                    1.0,
                    dprev,
                );
                if reset_after {
                    let da = d.step(ws.cells.as_slice(), t, h);
                    let dprev = d.step_mut(ws.dhidden.as_mut_slice(), t - 1, h);
                    sgemm(self.inner(), 1.0, da, columns(u, h, w, n).t(), 1.0, dprev);
                }
            }
        }
        previous_states(d, ws, carry);
        self.kernel_grad(d, &ws.dhidden, (&ws.gates, w, 0), zr, du);
        let db = dbias.as_mut_slice();
        add_column_sums(d, ws.gates.as_slice(), w, (0, w), &mut db[..w]);
        if reset_after {
            // The candidate's recurrent part is h[t-1] U_n + its own bias.
            self.kernel_grad(d, &ws.dhidden, (&ws.cells, h, 0), n, du);
            add_column_sums(d, ws.gates.as_slice(), w, zr, &mut db[w..]);
            add_column_sums(d, ws.cells.as_slice(), h, (0, h), &mut db[w + 2 * h..]);
        } else {
            // The candidate's product reads the reset state r * h[t-1], kept in `cells`.
            self.kernel_grad(d, &ws.cells, (&ws.gates, w, 2 * h), n, du);
        }
        Ok(())
    }

    fn rnn_fwd(
        &self,
        p: &RecurrentParams,
        u: &CpuBuffer,
        ws: &mut RecurrentWorkspace<CpuBuffer>,
        y: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "rnn_fwd";
        let d = Dims::of(p, 1);
        check(OP, d, u, ws, ("y", p.output(), y.as_slice().len()))?;
        let h = d.units;
        let carry = p.carry != 0;
        if carry {
            carry_states(d, ws, false);
        }
        let u = MatRef::row_major(u.as_slice(), h, h);
        for t in 0..d.time {
            if t > 0 || carry {
                let prev = d.previous(&ws.hidden, &ws.h0, t);
                sgemm(
                    self.inner(),
                    1.0,
                    prev,
                    u,
                    1.0,
                    d.step_mut(ws.gates.as_mut_slice(), t, h),
                );
            }
            self.each_sample(d, t, carry, ws, &|r| {
                for (g, hid) in r.g.iter_mut().zip(r.hid.iter_mut()) {
                    *g = tanh(*g);
                    *hid = *g;
                }
            });
        }
        write_output(p, d, ws, y);
        Ok(())
    }

    fn rnn_bwd(
        &self,
        p: &RecurrentParams,
        u: &CpuBuffer,
        ws: &mut RecurrentWorkspace<CpuBuffer>,
        dy: &CpuBuffer,
        du: &mut CpuBuffer,
    ) -> Result<()> {
        const OP: &str = "rnn_bwd";
        let d = Dims::of(p, 1);
        check(OP, d, u, ws, ("dy", p.output(), dy.as_slice().len()))?;
        let h = d.units;
        check_len(OP, "du", h * h, du.as_slice().len())?;
        spread_dy(p, d, ws, dy);
        let carry = p.carry != 0;
        let u = MatRef::row_major(u.as_slice(), h, h);
        for t in (0..d.time).rev() {
            self.each_sample(d, t, carry, ws, &|r| {
                for (g, dh) in r.g.iter_mut().zip(r.dh) {
                    *g = dh * (1.0 - *g * *g);
                }
            });
            if t > 0 {
                let dg = d.step(ws.gates.as_slice(), t, h);
                sgemm(
                    self.inner(),
                    1.0,
                    dg,
                    u.t(),
                    1.0,
                    d.step_mut(ws.dhidden.as_mut_slice(), t - 1, h),
                );
            }
        }
        previous_states(d, ws, carry);
        self.kernel_grad(d, &ws.dhidden, (&ws.gates, h, 0), (0, h), du);
        Ok(())
    }

    fn reverse_time(
        &self,
        p: &RecurrentParams,
        x: &CpuBuffer,
        y: InputGrad<'_, CpuBuffer>,
    ) -> Result<()> {
        const OP: &str = "reverse_time";
        let (time, width) = (us(p.time), us(p.units));
        check_len(OP, "x", p.states(), x.as_slice().len())?;
        check_len(OP, "y", p.states(), y.buffer.as_slice().len())?;
        let x = &x.as_slice()[..p.states()];
        let accumulate = y.accumulate;
        let rows = (time * width).max(1);
        self.par_chunks_mut(&mut y.buffer.as_mut_slice()[..p.states()], rows, |b, out| {
            for (t, step) in out.chunks_exact_mut(width.max(1)).enumerate() {
                let from = (b * time + time - 1 - t) * width;
                let src = &x[from..from + width];
                if accumulate {
                    step.iter_mut().zip(src).for_each(|(o, v)| *o += v);
                } else {
                    step.copy_from_slice(src);
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{exp, sigmoid, tanh};

    /// The vectorisable `exp`, `sigmoid` and `tanh` against `f64`'s over the range a
    /// cell meets (and past it, where they saturate).
    #[test]
    fn fast_functions_match_f64() {
        for i in -40_000..=40_000 {
            let x = i as f32 * 0.0025;
            let wide = f64::from(x);
            let e = f64::from(exp(x));
            // Inside the range it does not clamp.
            assert!(
                x.abs() > 87.0 || (e - wide.exp()).abs() <= 4e-7 * wide.exp(),
                "exp({x}) = {e}"
            );
            let s = f64::from(sigmoid(x));
            let want = 1.0 / (1.0 + (-wide).exp());
            assert!((s - want).abs() <= 2e-7, "sigmoid({x}) = {s}");
            let t = f64::from(tanh(x));
            assert!((t - wide.tanh()).abs() <= 2e-7, "tanh({x}) = {t}");
        }
        assert_eq!(tanh(0.0), 0.0);
        assert!(sigmoid(-1e4) >= 0.0 && sigmoid(-1e4) < 1e-37);
        assert_eq!(sigmoid(1e4), 1.0);
        assert!(exp(200.0).is_finite() && exp(-200.0) > 0.0);
        assert!(tanh(1e4) == 1.0 && tanh(-1e4) == -1.0);
    }
}
