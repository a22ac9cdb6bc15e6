//! The time loop on the CPU: each step's recurrent product through the packed SGEMM
//! on strided views of the batch-major sequences, then the cell's gates one sample a
//! task on the thread pool.

use super::{RecurrentKernel, RecurrentParams, RecurrentWorkspace};
use crate::cpu::SendPtr;
use crate::cpu::gemm::{MatMut, MatRef, sgemm};
use crate::error::check_len;
use crate::ops::us;
use crate::{Cpu, CpuBuffer, Result};

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
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

impl Cpu {
    /// Runs `f(b)` for each sample `b` of the batch on the pool.
    fn per_sample(&self, batch: usize, f: &(dyn Fn(usize) + Sync)) {
        self.inner().pool.run(batch, &|b, _| f(b));
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
            // The previous call's last step becomes this call's initial state.
            for (dst, src) in [(&mut ws.h0, &ws.hidden), (&mut ws.c0, &ws.cells)] {
                let (dst, src) = (dst.as_mut_slice(), src.as_slice());
                for (b, row) in dst[..d.batch * h].chunks_exact_mut(h.max(1)).enumerate() {
                    let last = (b * d.time + d.time - 1) * h;
                    row.copy_from_slice(&src[last..last + h]);
                }
            }
        }
        let u = MatRef::row_major(u.as_slice(), h, w);
        for t in 0..d.time {
            if t > 0 || carry {
                let prev = if t > 0 {
                    d.step(ws.hidden.as_slice(), t - 1, h)
                } else {
                    MatRef::row_major(ws.h0.as_slice(), d.batch, h)
                };
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
                for j in 0..h {
                    let i = sigmoid(g[j]);
                    let f = sigmoid(g[h + j]);
                    let gg = g[2 * h + j].tanh();
                    let o = sigmoid(g[3 * h + j]);
                    let prev = c_prev.map_or(0.0, |c| c[j]);
                    let cj = f * prev + i * gg;
                    c[j] = cj;
                    hid[j] = o * cj.tanh();
                    g[j] = i;
                    g[h + j] = f;
                    g[2 * h + j] = gg;
                    g[3 * h + j] = o;
                }
            });
        }
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
                for j in 0..h {
                    let (i, f, gg, o) = (g[j], g[h + j], g[2 * h + j], g[3 * h + j]);
                    let tc = c[j].tanh();
                    let dcj = dc[j] + dh[j] * o * (1.0 - tc * tc);
                    let prev = c_prev.map_or(0.0, |c| c[j]);
                    g[j] = dcj * gg * i * (1.0 - i);
                    g[h + j] = dcj * prev * f * (1.0 - f);
                    g[2 * h + j] = dcj * i * (1.0 - gg * gg);
                    g[3 * h + j] = dh[j] * tc * o * (1.0 - o);
                    dc[j] = dcj * f;
                }
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
        // dU += sum over steps of h[t-1]^T dG[t], as one product over every step:
        // the hidden gradients are spent, so their buffer takes each step's previous
        // state (h0 or zero before the first), and the sum runs along K = batch * time.
        let hidden = ws.hidden.as_slice();
        let h0 = ws.h0.as_slice();
        let prev = &mut ws.dhidden.as_mut_slice()[..states];
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
        let rows = d.batch * d.time;
        sgemm(
            self.inner(),
            1.0,
            MatRef::row_major(&ws.dhidden.as_slice()[..states], rows, h).t(),
            MatRef::row_major(&ws.gates.as_slice()[..rows * w], rows, w),
            1.0,
            MatMut::row_major(du.as_mut_slice(), h, w),
        );
        Ok(())
    }
}
