//! The moving average: against direct loops on both sides of `torch.lerp`'s switch,
//! several tensors at once against one by one, its errors, and (with a GPU) the CUDA
//! kernel against the CPU bit for bit.

use super::*;
use crate::rng::Rng;
use crate::{Cpu, Error};

/// Lengths around the vector widths and the CPU's chunks of 16,384.
const LENS: [usize; 8] = [0, 1, 7, 8, 9, 1_025, 16_385, 70_001];

/// Decays on both sides of the switch at a weight of one half, and the ends.
const DECAYS: [f64; 6] = [0.999, 0.9, 0.5, 0.25, 0.0, 1.0];

fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.uniform_in(-scale, scale)).collect()
}

/// `torch.lerp(a, b, w)` written out, one value at a time.
fn direct(a: f32, b: f32, w: f32) -> f32 {
    if w < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}

/// Three updates of one tensor against the direct loop, bit for bit, and against the
/// average in `f64` to rounding.
fn check_direct<B: EmaKernel>(backend: &B) {
    for len in LENS {
        for decay in DECAYS {
            let p = EmaParams::new(len, decay).unwrap();
            let start = values(len, 1, 1.0);
            let mut want = start.clone();
            let mut exact: Vec<f64> = start.iter().map(|&v| f64::from(v)).collect();
            let mut average = backend.alloc_from(&start).unwrap();
            for step in 0..3 {
                let value = values(len, 10 + step, 2.0);
                backend
                    .ema_update(&p, &mut average, &backend.alloc_from(&value).unwrap())
                    .unwrap();
                for ((w, e), &v) in want.iter_mut().zip(&mut exact).zip(&value) {
                    *w = direct(*w, v, p.weight);
                    *e = decay * *e + (1.0 - decay) * f64::from(v);
                }
            }
            let got = backend.to_host(&average, len).unwrap();
            assert_eq!(got, want, "len {len}, decay {decay}");
            for (i, (&g, &e)) in got.iter().zip(&exact).enumerate() {
                assert!(
                    (f64::from(g) - e).abs() <= 1e-6 * e.abs().max(1.0),
                    "len {len}, decay {decay}, [{i}]: {g} against {e}"
                );
            }
        }
    }
}

#[test]
fn the_average_is_torchs_lerp_on_cpu() {
    check_direct(&Cpu::with_threads(2).unwrap());
}

#[test]
fn decay_one_keeps_and_decay_zero_copies() {
    let cpu = Cpu::with_threads(1).unwrap();
    let value = cpu.alloc_from(&[3.0, -1.0, 0.5]).unwrap();
    let mut average = cpu.alloc_from(&[1.0, 2.0, f32::MAX]).unwrap();
    cpu.ema_update(&EmaParams::new(3, 1.0).unwrap(), &mut average, &value)
        .unwrap();
    assert_eq!(cpu.to_host(&average, 3).unwrap(), [1.0, 2.0, f32::MAX]);
    cpu.ema_update(&EmaParams::new(3, 0.0).unwrap(), &mut average, &value)
        .unwrap();
    assert_eq!(cpu.to_host(&average, 3).unwrap(), [3.0, -1.0, 0.5]);
}

#[test]
fn bad_decays_and_short_buffers_are_refused() {
    for decay in [-0.1, 1.5, f64::NAN] {
        let err = EmaParams::new(4, decay).unwrap_err();
        assert!(
            matches!(err, Error::InvalidParams { op: "ema", .. }) && err.to_string().contains("decay"),
            "{decay}: {err}"
        );
    }
    let cpu = Cpu::with_threads(1).unwrap();
    let p = EmaParams::new(4, 0.9).unwrap();
    let (mut short, mut long) = (cpu.alloc(3).unwrap(), cpu.alloc(4).unwrap());
    let value = cpu.alloc(4).unwrap();
    let err = cpu.ema_update(&p, &mut short, &value).unwrap_err();
    assert!(
        matches!(err, Error::BufferTooSmall { operand: "average", needed: 4, len: 3, .. }),
        "{err}"
    );
    let err = cpu.ema_update(&p, &mut long, &short).unwrap_err();
    assert!(
        matches!(err, Error::BufferTooSmall { operand: "value", .. }),
        "{err}"
    );
}

/// Eleven tensors at once (a group of eight and one of three on a GPU), one of them
/// empty, with different decays and lengths, give what each gives alone, bit for bit.
fn check_many<B: EmaKernel>(backend: &B) {
    let lens = [1, 300, 0, 70_001, 5, 4096, 77, 1, 2, 1000, 33];
    let params: Vec<EmaParams> = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| EmaParams::new(len, DECAYS[i % DECAYS.len()]).unwrap())
        .collect();
    let make = |seed: u64| -> Vec<(B::Buffer, B::Buffer)> {
        lens.iter()
            .enumerate()
            .map(|(i, &len)| {
                let s = seed + 2 * i as u64;
                (
                    backend.alloc_from(&values(len, s, 1.0)).unwrap(),
                    backend.alloc_from(&values(len, s + 1, 1.0)).unwrap(),
                )
            })
            .collect()
    };
    let (mut one, mut many) = (make(7), make(7));
    for ((average, value), p) in one.iter_mut().zip(&params) {
        backend.ema_update(p, average, value).unwrap();
    }
    backend
        .ema_update_many(
            many.iter_mut()
                .zip(&params)
                .map(|((average, value), p)| EmaStep {
                    params: *p,
                    average,
                    value,
                }),
        )
        .unwrap();
    for (i, ((a, _), (b, _))) in one.iter().zip(&many).enumerate() {
        assert_eq!(
            backend.to_host(a, lens[i]).unwrap(),
            backend.to_host(b, lens[i]).unwrap(),
            "{i}"
        );
    }
}

#[test]
fn many_tensors_at_once_match_one_by_one_on_cpu() {
    check_many(&Cpu::with_threads(2).unwrap());
}

#[cfg(feature = "cuda")]
#[test]
fn the_average_is_torchs_lerp_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        check_direct(&gpu);
    }
}

#[cfg(feature = "cuda")]
#[test]
fn many_tensors_at_once_match_one_by_one_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        check_many(&gpu);
    }
}

/// The GPU against the CPU, bit for bit (no FMA contraction on either side), for every
/// decay and length, over three updates.
#[cfg(feature = "cuda")]
#[test]
fn cuda_matches_cpu_bit_for_bit() {
    let Some(gpu) = crate::cuda::test_device() else {
        return;
    };
    let cpu = Cpu::with_threads(2).unwrap();
    for len in LENS {
        for decay in DECAYS {
            let p = EmaParams::new(len, decay).unwrap();
            let start = values(len, 3, 1.0);
            let (mut c, mut g) = (
                cpu.alloc_from(&start).unwrap(),
                gpu.alloc_from(&start).unwrap(),
            );
            for step in 0..3 {
                let value = values(len, 20 + step, 2.0);
                cpu.ema_update(&p, &mut c, &cpu.alloc_from(&value).unwrap())
                    .unwrap();
                gpu.ema_update(&p, &mut g, &gpu.alloc_from(&value).unwrap())
                    .unwrap();
            }
            assert_eq!(
                cpu.to_host(&c, len).unwrap(),
                gpu.to_host(&g, len).unwrap(),
                "len {len}, decay {decay}"
            );
        }
    }
}

/// While a check's finding waits on the GPU, averages skip; once the host has taken
/// it, they run again.
#[cfg(feature = "cuda")]
#[test]
fn averages_skip_while_an_error_is_pending_on_cuda() {
    use crate::ops::reduce::ReduceKernel;
    let Some(gpu) = crate::cuda::test_device() else {
        return;
    };
    let p = EmaParams::new(3, 0.5).unwrap();
    let mut average = gpu.alloc_from(&[1.0, 2.0, 3.0]).unwrap();
    let value = gpu.alloc_from(&[3.0, 4.0, 5.0]).unwrap();
    let bad = gpu.alloc_from(&[0.0, f32::NAN]).unwrap();
    gpu.check_finite(&bad, 2).unwrap();
    gpu.ema_update(&p, &mut average, &value).unwrap();
    assert_eq!(gpu.to_host(&average, 3).unwrap(), [1.0, 2.0, 3.0]);
    assert!(gpu.check_errors().is_err());
    gpu.ema_update(&p, &mut average, &value).unwrap();
    assert_eq!(gpu.to_host(&average, 3).unwrap(), [2.0, 3.0, 4.0]);
}
