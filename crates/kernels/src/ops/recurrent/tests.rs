//! The time loop on every backend present, against a scalar LSTM written out here.

use super::*;
use crate::Cpu;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The LSTM of the module docs, one value at a time in `f64`, from initial states
/// `(h0, c0)`: `(h, c)` of every step.
fn reference(
    p: &RecurrentParams,
    proj: &[f32],
    u: &[f32],
    h0: &[f64],
    c0: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let (b_n, t_n, h) = (p.batch as usize, p.time as usize, p.units as usize);
    let w = 4 * h;
    let mut hs = vec![0.0; b_n * t_n * h];
    let mut cs = vec![0.0; b_n * t_n * h];
    for b in 0..b_n {
        for t in 0..t_n {
            let row = b * t_n + t;
            for j in 0..h {
                let gate = |k: usize| {
                    let mut v = f64::from(proj[row * w + k * h + j]);
                    for i in 0..h {
                        let prev = if t > 0 {
                            hs[(row - 1) * h + i]
                        } else {
                            h0[b * h + i]
                        };
                        v += prev * f64::from(u[i * w + k * h + j]);
                    }
                    v
                };
                let (i, f, g, o) = (
                    sigmoid(gate(0)),
                    sigmoid(gate(1)),
                    gate(2).tanh(),
                    sigmoid(gate(3)),
                );
                let prev = if t > 0 {
                    cs[(row - 1) * h + j]
                } else {
                    c0[b * h + j]
                };
                cs[row * h + j] = f * prev + i * g;
                hs[row * h + j] = o * cs[row * h + j].tanh();
            }
        }
    }
    (hs, cs)
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 + 1.0) * (seed as f32 + 0.37)).sin() * 0.8)
        .collect()
}

fn check<B: RecurrentKernel>(backend: &B) {
    for (return_sequences, units) in [(true, 3), (false, 5)] {
        let p = RecurrentParams::new(2, 4, units, return_sequences).unwrap();
        let w = 4 * units;
        let proj = values(p.states() * 4, 1);
        let u = values(units * w, 2);
        let mut ws = RecurrentWorkspace::new(backend, 2, 4, units, 4).unwrap();
        backend.upload(&proj, &mut ws.gates).unwrap();
        let ub = backend.alloc_from(&u).unwrap();
        let mut y = backend.alloc(p.output()).unwrap();
        backend.lstm_fwd(&p, &ub, &mut ws, &mut y).unwrap();
        let zeros = vec![0.0; 2 * units];
        let (hs, cs) = reference(&p, &proj, &u, &zeros, &zeros);
        let got_h = backend.to_host(&ws.hidden, p.states()).unwrap();
        let got_c = backend.to_host(&ws.cells, p.states()).unwrap();
        for i in 0..p.states() {
            assert!((f64::from(got_h[i]) - hs[i]).abs() < 1e-5, "h {i}");
            assert!((f64::from(got_c[i]) - cs[i]).abs() < 1e-5, "c {i}");
        }
        let y = backend.to_host(&y, p.output()).unwrap();
        if return_sequences {
            assert_eq!(y, got_h);
        } else {
            for b in 0..2 {
                let last = (b * 4 + 3) * units;
                assert_eq!(&y[b * units..(b + 1) * units], &got_h[last..last + units]);
            }
        }
    }
}

/// A second call with `carry` starts from the first call's last states.
fn check_carry<B: RecurrentKernel>(backend: &B) {
    let units = 3;
    let p = RecurrentParams::new(2, 4, units, false).unwrap();
    let proj = values(p.states() * 4, 3);
    let u = values(units * 4 * units, 4);
    let mut ws = RecurrentWorkspace::new(backend, 2, 4, units, 4).unwrap();
    let ub = backend.alloc_from(&u).unwrap();
    let mut y = backend.alloc(p.output()).unwrap();
    backend.upload(&proj, &mut ws.gates).unwrap();
    backend.lstm_fwd(&p, &ub, &mut ws, &mut y).unwrap();
    let zeros = vec![0.0; 2 * units];
    let (h1, c1) = reference(&p, &proj, &u, &zeros, &zeros);
    let last = |s: &[f64]| -> Vec<f64> {
        (0..2)
            .flat_map(|b| s[(b * 4 + 3) * units..(b * 4 + 4) * units].to_vec())
            .collect()
    };
    let proj2 = values(p.states() * 4, 5);
    backend.upload(&proj2, &mut ws.gates).unwrap();
    backend
        .lstm_fwd(&p.carrying(true), &ub, &mut ws, &mut y)
        .unwrap();
    let (h2, _) = reference(&p, &proj2, &u, &last(&h1), &last(&c1));
    let got = backend.to_host(&y, p.output()).unwrap();
    for (g, w) in got.iter().zip(last(&h2)) {
        assert!((f64::from(*g) - w).abs() < 1e-5, "{g} vs {w}");
    }
}

#[test]
fn runs_the_lstm_on_cpu() {
    check(&Cpu::with_threads(2).unwrap());
    check_carry(&Cpu::with_threads(2).unwrap());
}

#[cfg(feature = "cuda")]
#[test]
fn runs_the_lstm_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        check(&gpu);
        check_carry(&gpu);
    }
}

#[test]
fn short_buffers_are_an_error() {
    let cpu = Cpu::with_threads(1).unwrap();
    let p = RecurrentParams::new(2, 4, 3, true).unwrap();
    let mut ws = RecurrentWorkspace::new(&cpu, 2, 3, 3, 4).unwrap();
    let u = cpu.alloc(36).unwrap();
    let mut y = cpu.alloc(24).unwrap();
    assert!(cpu.lstm_fwd(&p, &u, &mut ws, &mut y).is_err());
}

/// `sum(y * dy)` of one call from the states `prev` (hidden, cells) that a previous
/// call left.
fn carried_loss<B: RecurrentKernel>(
    backend: &B,
    p: &RecurrentParams,
    prev: &(Vec<f32>, Vec<f32>),
    proj: &[f32],
    u: &[f32],
    dy: &[f32],
    ws: &mut RecurrentWorkspace<B::Buffer>,
) -> f64 {
    backend.upload(&prev.0, &mut ws.hidden).unwrap();
    backend.upload(&prev.1, &mut ws.cells).unwrap();
    backend.upload(proj, &mut ws.gates).unwrap();
    let ub = backend.alloc_from(u).unwrap();
    let mut y = backend.alloc(p.output()).unwrap();
    backend.lstm_fwd(p, &ub, ws, &mut y).unwrap();
    let y = backend.to_host(&y, p.output()).unwrap();
    y.iter()
        .zip(dy)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum()
}

/// The backward pass from carried states (the states constants: truncated
/// backpropagation through time) against central differences.
fn check_carried_gradients<B: RecurrentKernel>(backend: &B) {
    let units = 3;
    for return_sequences in [true, false] {
        let p = RecurrentParams::new(2, 3, units, return_sequences)
            .unwrap()
            .carrying(true);
        let prev = (values(p.states(), 6), values(p.states(), 7));
        let mut proj = values(p.states() * 4, 8);
        let mut u = values(units * 4 * units, 9);
        let dy = values(p.output(), 10);
        let mut ws = RecurrentWorkspace::new(backend, 2, 3, units, 4).unwrap();
        carried_loss(backend, &p, &prev, &proj, &u, &dy, &mut ws);
        let ub = backend.alloc_from(&u).unwrap();
        let dyb = backend.alloc_from(&dy).unwrap();
        let mut du = backend.alloc(u.len()).unwrap();
        backend.lstm_bwd(&p, &ub, &mut ws, &dyb, &mut du).unwrap();
        let dgates = backend.to_host(&ws.gates, proj.len()).unwrap();
        let du = backend.to_host(&du, u.len()).unwrap();
        let step = 1e-2f32;
        let close = |got: f32, want: f64| (f64::from(got) - want).abs() < 2e-3 * (1.0 + want.abs());
        for i in 0..proj.len() {
            let v = proj[i];
            proj[i] = v + step;
            let plus = carried_loss(backend, &p, &prev, &proj, &u, &dy, &mut ws);
            proj[i] = v - step;
            let minus = carried_loss(backend, &p, &prev, &proj, &u, &dy, &mut ws);
            proj[i] = v;
            let want = (plus - minus) / (2.0 * f64::from(step));
            assert!(close(dgates[i], want), "dG[{i}]: {} vs {want}", dgates[i]);
        }
        for i in 0..u.len() {
            let v = u[i];
            u[i] = v + step;
            let plus = carried_loss(backend, &p, &prev, &proj, &u, &dy, &mut ws);
            u[i] = v - step;
            let minus = carried_loss(backend, &p, &prev, &proj, &u, &dy, &mut ws);
            u[i] = v;
            let want = (plus - minus) / (2.0 * f64::from(step));
            assert!(close(du[i], want), "dU[{i}]: {} vs {want}", du[i]);
        }
    }
}

#[test]
fn carried_states_get_no_gradient_on_cpu() {
    check_carried_gradients(&Cpu::with_threads(2).unwrap());
}

#[cfg(feature = "cuda")]
#[test]
fn carried_states_get_no_gradient_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        check_carried_gradients(&gpu);
    }
}
