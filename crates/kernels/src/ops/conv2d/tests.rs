//! Convolution against a direct six-loop convolution, and its backward passes
//! against the adjoint identity `<conv(x), g> = <x, dx(g)>`.

use kiln_shape::{Activation, Conv2dSpec, Padding, Shape};

use super::*;
use crate::Cpu;
use crate::rng::Rng;

fn direct(p: &Conv2dParams, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let (ih, iw, ic) = (us(p.in_h) as isize, us(p.in_w) as isize, us(p.in_c));
    let (oh, ow, oc) = (us(p.out_h), us(p.out_w), us(p.out_c));
    let (kh, kw) = (us(p.kernel_h), us(p.kernel_w));
    let mut y = vec![0.0; p.output_len()];
    for n in 0..us(p.batch) {
        for oy in 0..oh {
            for ox in 0..ow {
                for f in 0..oc {
                    let mut acc = f64::from(b[f]);
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let yy = (oy * us(p.stride_h) + ky) as isize - p.pad_top as isize;
                            let xx = (ox * us(p.stride_w) + kx) as isize - p.pad_left as isize;
                            if yy < 0 || yy >= ih || xx < 0 || xx >= iw {
                                continue;
                            }
                            for c in 0..ic {
                                let xi = ((n * ih as usize + yy as usize) * iw as usize
                                    + xx as usize)
                                    * ic
                                    + c;
                                let wi = ((ky * kw + kx) * ic + c) * oc + f;
                                acc += f64::from(x[xi]) * f64::from(w[wi]);
                            }
                        }
                    }
                    y[((n * oh + oy) * ow + ox) * oc + f] = acc as f32;
                }
            }
        }
    }
    y
}

fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.uniform_in(-1.0, 1.0)).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum()
}

fn check<B: Conv2dKernel>(backend: &B) {
    let cases = [
        ([5, 6, 3], 4, (3, 3), (1, 1), Padding::Valid, 2),
        ([5, 5, 2], 3, (3, 3), (1, 1), Padding::Same, 2),
        ([7, 6, 3], 4, (3, 3), (2, 2), Padding::Same, 2),
        ([7, 8, 2], 3, (2, 3), (2, 2), Padding::Valid, 1),
        ([9, 9, 1], 5, (4, 4), (3, 2), Padding::Same, 3),
        // Padding above and below only: whole kernel rows fall outside the image.
        ([6, 5, 2], 3, (3, 1), (1, 1), Padding::Same, 2),
        // Large enough images that the CPU works in blocks of two (2, 2, 1).
        ([40, 40, 8], 4, (3, 3), (1, 1), Padding::Same, 5),
        // Enough channels for Winograd's transform on the CPU: even and odd output
        // sizes (half tiles), padding, channel counts that are not whole vectors, and
        // more tiles than one block holds (the seed CNN's second layer).
        ([6, 7, 16], 16, (3, 3), (1, 1), Padding::Valid, 2),
        ([5, 6, 20], 17, (3, 3), (1, 1), Padding::Same, 3),
        ([15, 15, 32], 64, (3, 3), (1, 1), Padding::Valid, 3),
        // The most channel pairs the transform takes (the seed CNN's third layer),
        // and a few more, which go direct.
        ([6, 6, 64], 128, (3, 3), (1, 1), Padding::Valid, 2),
        ([6, 6, 64], 129, (3, 3), (1, 1), Padding::Valid, 2),
    ];
    let mut rng = Rng::new(5);
    for (case, (input, filters, kernel, stride, padding, batch)) in cases.into_iter().enumerate() {
        // Every other case with ReLU in the forward's store (the backward passes
        // start from the pre-activation gradient either way).
        let relu = case % 2 == 1;
        let spec = Conv2dSpec {
            filters,
            kernel,
            stride,
            padding,
            activation: if relu {
                Activation::Relu
            } else {
                Activation::Linear
            },
        };
        let p = Conv2dParams::new(&spec, Shape::new(&input), batch).unwrap();
        let (x, w, b) = (
            random(&mut rng, p.input_len()),
            random(&mut rng, p.weight_len()),
            random(&mut rng, filters),
        );
        let xb = backend.alloc_from(&x).unwrap();
        let wb = backend.alloc_from(&w).unwrap();
        let bb = backend.alloc_from(&b).unwrap();
        let mut yb = backend.alloc(p.output_len()).unwrap();
        let mut ws = backend.alloc(backend.conv2d_workspace_len(&p)).unwrap();
        backend
            .conv2d_fwd(&p, &xb, &wb, &bb, &mut yb, &mut ws)
            .unwrap();
        let y = backend.to_host(&yb, p.output_len()).unwrap();
        for (g, want) in y.iter().zip(direct(&p, &x, &w, &b)) {
            let want = if relu { want.max(0.0) } else { want };
            assert!((g - want).abs() < 1e-4, "{p:?}: {g} vs {want}");
        }

        // Weight gradient: d<y, g>/dw[i] = <direct(x, e_i), g>, checked on a few entries.
        let g = random(&mut rng, p.output_len());
        let gb = backend.alloc_from(&g).unwrap();
        // The parameter gradients are added to what the buffers hold.
        const BEFORE: f32 = 0.5;
        let mut dw = backend.alloc_from(&vec![BEFORE; p.weight_len()]).unwrap();
        let mut db = backend.alloc_from(&vec![BEFORE; filters]).unwrap();
        // The input gradient is overwritten: NaN wherever the pass fails to write.
        let mut dx = backend.alloc_from(&vec![f32::NAN; p.input_len()]).unwrap();
        let dx_write = Some(InputGrad::write(&mut dx));
        backend
            .conv2d_bwd(&p, &xb, &wb, &gb, &mut dw, &mut db, dx_write, &mut ws)
            .unwrap();
        // Without an input gradient, the same parameter gradients.
        let (mut dw2, mut db2) = (
            backend.alloc_from(&vec![BEFORE; p.weight_len()]).unwrap(),
            backend.alloc_from(&vec![BEFORE; filters]).unwrap(),
        );
        backend
            .conv2d_bwd(&p, &xb, &wb, &gb, &mut dw2, &mut db2, None, &mut ws)
            .unwrap();
        // Equal up to the order of the sums: CUDA splits the weight gradient's sum over
        // pixels between blocks, which add their parts in whatever order they finish.
        for (what, len, a, b) in [
            ("dw", p.weight_len(), &dw2, &dw),
            ("db", filters, &db2, &db),
        ] {
            let (a, b) = (
                backend.to_host(a, len).unwrap(),
                backend.to_host(b, len).unwrap(),
            );
            for (i, (a, b)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{p:?}: {what}[{i}] {a} vs {b}"
                );
            }
        }
        let dw = backend.to_host(&dw, p.weight_len()).unwrap();
        let zero_b = vec![0.0; filters];
        for i in (0..p.weight_len()).step_by((p.weight_len() / 40).max(7)) {
            let mut e = vec![0.0; p.weight_len()];
            e[i] = 1.0;
            let want = dot(&direct(&p, &x, &e, &zero_b), &g) + f64::from(BEFORE);
            assert!(
                (f64::from(dw[i]) - want).abs() < 1e-3,
                "dw[{i}] {} vs {want}",
                dw[i]
            );
        }
        let db = backend.to_host(&db, filters).unwrap();
        for (f, got) in db.iter().enumerate() {
            let want: f32 = g.iter().skip(f).step_by(filters).sum::<f32>() + BEFORE;
            assert!((got - want).abs() < 1e-3);
        }

        // Input gradient: the adjoint of the linear map x -> conv(x, w).
        let dx = backend.to_host(&dx, p.input_len()).unwrap();
        let lhs = dot(&direct(&p, &x, &w, &zero_b), &g);
        let rhs = dot(&x, &dx);
        assert!(
            (lhs - rhs).abs() < 1e-3 * (1.0 + lhs.abs()),
            "{lhs} vs {rhs}"
        );
        // And entry by entry on a few inputs.
        for i in (0..p.input_len()).step_by((p.input_len() / 40).max(11)) {
            let mut e = vec![0.0; p.input_len()];
            e[i] = 1.0;
            let want = dot(&direct(&p, &e, &w, &zero_b), &g);
            assert!(
                (f64::from(dx[i]) - want).abs() < 1e-3,
                "dx[{i}] {} vs {want}",
                dx[i]
            );
        }

        // An input gradient that accumulates is added to what the buffer holds (a
        // residual block's input already holds its shortcut's gradient): the same
        // gradient on top of random values, to rounding.
        let before = random(&mut rng, p.input_len());
        let mut dx_acc = backend.alloc_from(&before).unwrap();
        let dx_add = Some(InputGrad::add_to(&mut dx_acc));
        backend
            .conv2d_bwd(&p, &xb, &wb, &gb, &mut dw2, &mut db2, dx_add, &mut ws)
            .unwrap();
        let dx_acc = backend.to_host(&dx_acc, p.input_len()).unwrap();
        for (i, ((got, before), dx)) in dx_acc.iter().zip(&before).zip(&dx).enumerate() {
            let want = before + dx;
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{p:?}: accumulated dx[{i}] {got} vs {before} + {dx}"
            );
        }
    }
}

#[test]
fn matches_a_direct_convolution_on_cpu() {
    // The detected code paths on one and two threads, and the narrower ones of CPUs
    // without AVX-512 or AVX2.
    for cpu in Cpu::every_path() {
        check(&cpu);
    }
}

#[test]
fn a_kernel_that_does_not_fit_is_an_error() {
    let spec = Conv2dSpec {
        filters: 1,
        kernel: (5, 5),
        stride: (1, 1),
        padding: Padding::Valid,
        activation: Activation::Linear,
    };
    let err = Conv2dParams::new(&spec, Shape::new(&[3, 3, 1]), 1).unwrap_err();
    assert!(
        err.to_string().contains("does not fit input [3, 3, 1]"),
        "{err}"
    );
}

#[cfg(feature = "cuda")]
#[test]
fn matches_a_direct_convolution_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        check(&gpu);
    }
}

/// `(y, dw, dbias, dx)` of one forward and backward pass on `backend`, the gradients
/// accumulated onto ones.
#[cfg(feature = "cuda")]
fn forward_backward<B: Conv2dKernel>(
    backend: &B,
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dy: &[f32],
) -> [Vec<f32>; 4] {
    let xb = backend.alloc_from(x).unwrap();
    let wb = backend.alloc_from(w).unwrap();
    let bb = backend.alloc_from(b).unwrap();
    let mut yb = backend.alloc(p.output_len()).unwrap();
    let mut ws = backend.alloc(backend.conv2d_workspace_len(p)).unwrap();
    backend
        .conv2d_fwd(p, &xb, &wb, &bb, &mut yb, &mut ws)
        .unwrap();
    let dyb = backend.alloc_from(dy).unwrap();
    let mut dw = backend.alloc_from(&vec![1.0; w.len()]).unwrap();
    let mut db = backend.alloc_from(&vec![1.0; b.len()]).unwrap();
    let mut dx = backend.alloc_from(&vec![5.0; x.len()]).unwrap();
    let dx_write = Some(InputGrad::write(&mut dx));
    backend
        .conv2d_bwd(p, &xb, &wb, &dyb, &mut dw, &mut db, dx_write, &mut ws)
        .unwrap();
    [
        backend.to_host(&yb, p.output_len()).unwrap(),
        backend.to_host(&dw, w.len()).unwrap(),
        backend.to_host(&db, b.len()).unwrap(),
        backend.to_host(&dx, x.len()).unwrap(),
    ]
}

/// The GPU against the CPU on the seed CNN's layers and on strided, padded and
/// rectangular kernels, with the epilogue activation, in every tile.
#[cfg(feature = "cuda")]
#[test]
fn cuda_matches_cpu() {
    use crate::cuda::parity::assert_close;
    let Some(gpu) = crate::cuda::test_device() else {
        return;
    };
    let cpu = Cpu::with_threads(2).unwrap();
    let cases = [
        (
            [32, 32, 3],
            32,
            (3, 3),
            (1, 1),
            Padding::Valid,
            8,
            Activation::Relu,
        ),
        (
            [15, 15, 32],
            64,
            (3, 3),
            (1, 1),
            Padding::Valid,
            4,
            Activation::Relu,
        ),
        (
            [7, 6, 3],
            4,
            (3, 3),
            (2, 2),
            Padding::Same,
            3,
            Activation::Tanh,
        ),
        (
            [9, 9, 1],
            5,
            (4, 4),
            (3, 2),
            Padding::Same,
            2,
            Activation::Linear,
        ),
        (
            [6, 5, 70],
            3,
            (3, 1),
            (1, 1),
            Padding::Same,
            2,
            Activation::Sigmoid,
        ),
    ];
    let mut rng = Rng::new(9);
    for (input, filters, kernel, stride, padding, batch, activation) in cases {
        let spec = Conv2dSpec {
            filters,
            kernel,
            stride,
            padding,
            activation,
        };
        let p = Conv2dParams::new(&spec, Shape::new(&input), batch).unwrap();
        let x = random(&mut rng, p.input_len());
        let w = random(&mut rng, p.weight_len());
        let b = random(&mut rng, filters);
        let dy = random(&mut rng, p.output_len());
        let c = forward_backward(&cpu, &p, &x, &w, &b, &dy);
        crate::cuda::gemm::in_every_tile(|tile| {
            let g = forward_backward(&gpu, &p, &x, &w, &b, &dy);
            for (name, (c, g)) in ["y", "dw", "dbias", "dx"].iter().zip(c.iter().zip(&g)) {
                let what = format!("{input:?} {kernel:?} {name} {tile:?}");
                assert_close(&what, c, g, 1e-3, 1e-3);
            }
        });
    }
}
