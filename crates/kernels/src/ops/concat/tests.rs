//! Concatenation against direct loops, forward and backward (written and added), and
//! its errors.

use super::*;
use crate::rng::Rng;
use crate::{Cpu, Error};

/// Rows and the widths of the inputs, concatenated in this order: one row, a few, and
/// enough for the CPU's threads to split; widths of one, odd ones, one input alone,
/// an empty one.
const CASES: [(usize, &[usize]); 7] = [
    (0, &[3, 5]),
    (1, &[1, 7, 29]),
    (3, &[1, 7, 29]),
    (2, &[8]),
    (4, &[5, 0, 2]),
    (1_000, &[16, 3, 13]),
    (5_000, &[61, 3]),
];

/// A value past the end of every buffer, and in every place not written yet.
const UNSET: f32 = 7.5;
const SPARE: usize = 3;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.uniform_in(-2.0, 2.0)).collect()
}

/// Each input's parameters, in order.
fn places(rows: usize, widths: &[usize]) -> Vec<ConcatParams> {
    let total = widths.iter().sum();
    let mut offset = 0;
    widths
        .iter()
        .map(|&width| {
            let p = ConcatParams::new(rows, width, total, offset).unwrap();
            offset += width;
            p
        })
        .collect()
}

fn check<B: ConcatKernel>(backend: &B) {
    for (rows, widths) in CASES {
        let total: usize = widths.iter().sum();
        let what = format!("{rows} rows of {widths:?}");
        let inputs: Vec<Vec<f32>> = (0..widths.len())
            .map(|k| values(rows * widths[k], 10 + k as u64))
            .collect();
        // Forward, one input at a time: each call writes its columns and no others.
        let mut want = vec![UNSET; rows * total + SPARE];
        let mut y = backend.alloc_from(&want).unwrap();
        for (p, x) in places(rows, widths).iter().zip(&inputs) {
            let xb = backend
                .alloc_from(&[&x[..], &[UNSET; SPARE]].concat())
                .unwrap();
            backend.concat_fwd(p, &xb, &mut y).unwrap();
            let (width, offset) = (p.width as usize, p.offset as usize);
            for r in 0..rows {
                for c in 0..width {
                    want[r * total + offset + c] = x[r * width + c];
                }
            }
            let got = backend.to_host(&y, want.len()).unwrap();
            assert_eq!(got, want, "{what}: forward up to offset {offset}");
        }
        assert!(rows * total == 0 || !want[..rows * total].contains(&UNSET));
        // Backward: each input's slice of the gradient, written or added.
        let dy = values(rows * total, 20);
        let dyb = backend.alloc_from(&dy).unwrap();
        for (k, p) in places(rows, widths).iter().enumerate() {
            let (width, offset) = (p.width as usize, p.offset as usize);
            let before = values(rows * width, 30 + k as u64);
            let mut written = vec![UNSET; rows * width + SPARE];
            let mut added = [&before[..], &[UNSET; SPARE]].concat();
            for r in 0..rows {
                for c in 0..width {
                    let g = dy[r * total + offset + c];
                    written[r * width + c] = g;
                    added[r * width + c] += g;
                }
            }
            let mut dx = backend.alloc_from(&vec![UNSET; written.len()]).unwrap();
            backend
                .concat_bwd(p, &dyb, InputGrad::write(&mut dx))
                .unwrap();
            let got = backend.to_host(&dx, written.len()).unwrap();
            assert_eq!(got, written, "{what}: gradient of input {k} written");
            let mut dx = backend
                .alloc_from(&[&before[..], &[UNSET; SPARE]].concat())
                .unwrap();
            backend
                .concat_bwd(p, &dyb, InputGrad::add_to(&mut dx))
                .unwrap();
            let got = backend.to_host(&dx, added.len()).unwrap();
            assert_eq!(got, added, "{what}: gradient of input {k} added");
        }
    }
}

fn check_errors<B: ConcatKernel>(backend: &B) {
    let p = ConcatParams::new(2, 3, 5, 2).unwrap();
    let short = |err: Error, operand: &str, needed: usize| match err {
        Error::BufferTooSmall {
            operand: o,
            needed: n,
            ..
        } => assert_eq!((o, n), (operand, needed)),
        other => panic!("{operand}: {other}"),
    };
    let (x, mut y) = (backend.alloc(6).unwrap(), backend.alloc(10).unwrap());
    let (x_short, mut y_short) = (backend.alloc(5).unwrap(), backend.alloc(9).unwrap());
    short(
        backend.concat_fwd(&p, &x_short, &mut y).unwrap_err(),
        "x",
        6,
    );
    short(
        backend.concat_fwd(&p, &x, &mut y_short).unwrap_err(),
        "y",
        10,
    );
    let mut dx = backend.alloc(6).unwrap();
    let mut dx_short = backend.alloc(5).unwrap();
    short(
        backend
            .concat_bwd(&p, &y_short, InputGrad::write(&mut dx))
            .unwrap_err(),
        "dy",
        10,
    );
    short(
        backend
            .concat_bwd(&p, &y, InputGrad::add_to(&mut dx_short))
            .unwrap_err(),
        "dx",
        6,
    );
    // Parameters written by hand are checked by the op too: one column past the row.
    let past = ConcatParams { offset: 3, ..p };
    for err in [
        backend.concat_fwd(&past, &x, &mut y).unwrap_err(),
        backend
            .concat_bwd(&past, &y, InputGrad::write(&mut dx))
            .unwrap_err(),
    ] {
        assert!(
            matches!(err, Error::InvalidParams { .. }) && err.to_string().contains("offset 3"),
            "{err}"
        );
    }
}

#[test]
fn parameters_refuse_inputs_past_the_row_and_sizes_past_32_bits() {
    assert!(ConcatParams::new(4, 3, 5, 2).is_ok());
    assert!(ConcatParams::new(4, 0, 5, 5).is_ok());
    for (width, total, offset) in [(3, 5, 3), (6, 5, 0), (0, 5, 6)] {
        let err = ConcatParams::new(4, width, total, offset).unwrap_err();
        assert!(
            matches!(err, Error::InvalidParams { op: "concat", .. }),
            "{width} at {offset} of {total}: {err}"
        );
    }
    // An offset and a width that overflow `u32` when added are past the row too.
    let wrap = ConcatParams {
        rows: 1,
        width: u32::MAX,
        total: u32::MAX,
        offset: 1,
    };
    assert!(wrap.check("concat").is_err());
    let big = u32::MAX as usize + 1;
    for (rows, width, total, offset, what) in [
        (big, 1, 1, 0, "rows"),
        (1, big, big, 0, "width"),
        (1, 1, big, 0, "total"),
        (1, 1, 1, big, "offset"),
    ] {
        let err = ConcatParams::new(rows, width, total, offset).unwrap_err();
        assert!(err.to_string().contains(&format!("{what} = ")), "{err}");
    }
}

#[test]
fn places_and_gathers_as_direct_loops_on_cpu() {
    check(&Cpu::with_threads(2).unwrap());
}

#[test]
fn short_buffers_and_inputs_past_the_row_are_errors_on_cpu() {
    check_errors(&Cpu::with_threads(2).unwrap());
}

#[cfg(feature = "cuda")]
#[test]
fn places_gathers_and_checks_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        check(&gpu);
        check_errors(&gpu);
    }
}

/// The output, each input's written gradient and each one added to a gradient already
/// there, on `backend`.
#[cfg(feature = "cuda")]
fn run_all<B: ConcatKernel>(backend: &B, rows: usize, widths: &[usize]) -> Vec<Vec<f32>> {
    let total: usize = widths.iter().sum();
    let mut y = backend.alloc(rows * total).unwrap();
    let dy = backend.alloc_from(&values(rows * total, 5)).unwrap();
    let mut out = Vec::new();
    for (k, p) in places(rows, widths).iter().enumerate() {
        let n = p.input_len();
        let x = backend.alloc_from(&values(n, 6 + k as u64)).unwrap();
        backend.concat_fwd(p, &x, &mut y).unwrap();
        let mut dx = backend.alloc(n).unwrap();
        backend
            .concat_bwd(p, &dy, InputGrad::write(&mut dx))
            .unwrap();
        out.push(backend.to_host(&dx, n).unwrap());
        let mut dx = backend.alloc_from(&values(n, 7 + k as u64)).unwrap();
        backend
            .concat_bwd(p, &dy, InputGrad::add_to(&mut dx))
            .unwrap();
        out.push(backend.to_host(&dx, n).unwrap());
    }
    out.push(backend.to_host(&y, rows * total).unwrap());
    out
}

/// The GPU against the CPU, bit for bit: moves and one addition a value.
#[cfg(feature = "cuda")]
#[test]
fn cuda_matches_cpu_bit_for_bit() {
    let Some(gpu) = crate::cuda::test_device() else {
        return;
    };
    let cpu = Cpu::with_threads(2).unwrap();
    for (rows, widths) in CASES
        .into_iter()
        .chain([(64 * 32 * 32, &[32usize, 16, 16][..])])
    {
        assert_eq!(
            run_all(&cpu, rows, widths),
            run_all(&gpu, rows, widths),
            "{rows} rows of {widths:?}"
        );
    }
}
