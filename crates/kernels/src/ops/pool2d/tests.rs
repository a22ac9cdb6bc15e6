//! Pooling against hand-computed windows and the adjoint identity.

use kiln_shape::{Activation, Padding, Pool2dSpec, PoolMode, Shape};

use super::*;
use crate::Cpu;
use crate::ops::activation::{ActivationKernel, ActivationParams};
use crate::rng::Rng;

fn run<B: Pool2dKernel>(backend: &B, p: &Pool2dParams, x: &[f32]) -> Vec<f32> {
    let xb = backend.alloc_from(x).unwrap();
    let mut yb = backend.alloc(p.output_len()).unwrap();
    backend.pool2d_fwd(p, &xb, &mut yb, None).unwrap();
    let y = backend.to_host(&yb, p.output_len()).unwrap();
    // Filling the reserve changes nothing in the output.
    let mut reserve = backend.alloc(backend.pool2d_reserve_len(p)).unwrap();
    backend
        .pool2d_fwd(p, &xb, &mut yb, Some(&mut reserve))
        .unwrap();
    assert_eq!(backend.to_host(&yb, p.output_len()).unwrap(), y);
    y
}

/// The backward pass (through a ReLU with `relu`) from output gradient `g`, twice:
/// from the forward's input and output alone, and from the reserve of a training-mode
/// forward pass; both must agree bit for bit. Cells the pass fails to write are NaN.
fn backward<B: Pool2dKernel>(
    backend: &B,
    p: &Pool2dParams,
    x: &[f32],
    g: &[f32],
    relu: bool,
) -> Result<Vec<f32>> {
    let xb = backend.alloc_from(x).unwrap();
    let mut yb = backend.alloc(p.output_len()).unwrap();
    let mut reserve = backend.alloc(backend.pool2d_reserve_len(p)).unwrap();
    backend.pool2d_fwd(p, &xb, &mut yb, Some(&mut reserve))?;
    let gb = backend.alloc_from(g).unwrap();
    let mut results = Vec::new();
    for reserve in [None, Some(&reserve)] {
        let fwd = PoolForward {
            x: &xb,
            y: &yb,
            reserve,
        };
        let mut dx = backend.alloc_from(&vec![f32::NAN; p.input_len()]).unwrap();
        if relu {
            backend.pool2d_bwd_through_relu(p, fwd, &gb, &mut dx)?;
        } else {
            backend.pool2d_bwd(p, fwd, &gb, &mut dx)?;
        }
        results.push(backend.to_host(&dx, p.input_len()).unwrap());
    }
    let (from_input, from_reserve) = (&results[0], &results[1]);
    for (i, (a, b)) in from_input.iter().zip(from_reserve).enumerate() {
        assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "{p:?}: dx[{i}] {a} from the input, {b} from the reserve"
        );
    }
    Ok(results.swap_remove(1))
}

fn spec(size: usize, stride: usize, padding: Padding) -> Pool2dSpec {
    Pool2dSpec {
        mode: PoolMode::Max,
        size: (size, size),
        stride: (stride, stride),
        padding,
    }
}

/// The geometry of `s` computing `kind`.
fn params(s: &Pool2dSpec, kind: PoolKind, input: Shape, batch: usize) -> Result<Pool2dParams> {
    let mode = match kind {
        PoolKind::Max => PoolMode::Max,
        PoolKind::Avg => PoolMode::Avg,
    };
    Pool2dParams::new(&Pool2dSpec { mode, ..*s }, input, batch)
}

fn check<B: Pool2dKernel>(backend: &B) {
    // One 3x3 single-channel image, values 0..9.
    let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
    let input = Shape::new(&[3, 3, 1]);
    let max_valid = params(&spec(2, 1, Padding::Valid), PoolKind::Max, input, 1).unwrap();
    assert_eq!(run(backend, &max_valid, &x), [4.0, 5.0, 7.0, 8.0]);
    // Same padding, stride 2: output 2x2, windows clipped at the bottom/right.
    let avg_same = params(&spec(2, 2, Padding::Same), PoolKind::Avg, input, 1).unwrap();
    assert_eq!(run(backend, &avg_same, &x), [2.0, 3.5, 6.5, 8.0]);
    let global = Pool2dParams::global_avg(input, 1).unwrap();
    assert_eq!(run(backend, &global, &x), [4.0]);

    // Backward is the adjoint of the (piecewise) linear forward map; on channels that
    // fill whole vectors, too.
    let mut rng = Rng::new(3);
    for (input, kind) in [
        (Shape::new(&[5, 7, 3]), PoolKind::Max),
        (Shape::new(&[5, 7, 3]), PoolKind::Avg),
        (Shape::new(&[5, 6, 16]), PoolKind::Max),
    ] {
        for s in [
            spec(2, 2, Padding::Valid),
            spec(3, 2, Padding::Same),
            spec(3, 1, Padding::Valid),
        ] {
            let p = params(&s, kind, input, 2).unwrap();
            let x: Vec<f32> = (0..p.input_len())
                .map(|_| rng.uniform_in(-1.0, 1.0))
                .collect();
            let g: Vec<f32> = (0..p.output_len())
                .map(|_| rng.uniform_in(-1.0, 1.0))
                .collect();
            let y = run(backend, &p, &x);
            // NaN wherever the pass fails to write (the 5x7 input leaves a row and a
            // column outside every 2x2 window).
            let dx = backward(backend, &p, &x, &g, false).unwrap();
            // Max pooling is linear in x for a fixed argmax pattern, average always:
            // <pool(x), g> = <x, dx>.
            let lhs: f32 = y.iter().zip(&g).map(|(a, b)| a * b).sum();
            let rhs: f32 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-4, "{kind:?} {s:?}: {lhs} vs {rhs}");
        }
    }
}

#[test]
fn pools_and_backpropagates_on_cpu() {
    check(&Cpu::with_threads(2).unwrap());
    check(&Cpu::with_threads(1).unwrap());
    // The code paths of CPUs without AVX2.
    check(&Cpu::portable(2).unwrap());
}

/// Max pooling through a ReLU equals its backward pass followed by the ReLU's
/// (`dx * (x > 0)`), value for value (a zero's sign aside), over inputs with many zeros (whole windows of them
/// included, which get no gradient) and edges that no window covers; and it refuses
/// average pooling.
fn check_through_relu<B: Pool2dKernel + ActivationKernel>(backend: &B) {
    let mut rng = Rng::new(11);
    for (input, s) in [
        (Shape::new(&[8, 8, 3]), spec(2, 2, Padding::Valid)),
        (Shape::new(&[7, 9, 70]), spec(2, 2, Padding::Valid)),
        (Shape::new(&[6, 8, 16]), spec(2, 2, Padding::Valid)),
        (Shape::new(&[7, 9, 5]), spec(3, 2, Padding::Same)),
    ] {
        let p = params(&s, PoolKind::Max, input, 3).unwrap();
        let x: Vec<f32> = (0..p.input_len())
            .map(|_| rng.uniform_in(-1.0, 1.0).max(0.0))
            .collect();
        let g: Vec<f32> = (0..p.output_len())
            .map(|_| rng.uniform_in(-1.0, 1.0))
            .collect();
        let fused = backward(backend, &p, &x, &g, true).unwrap();
        let mut want = backend
            .alloc_from(&backward(backend, &p, &x, &g, false).unwrap())
            .unwrap();
        let xb = backend.alloc_from(&x).unwrap();
        let relu = ActivationParams::new(Activation::Relu, p.input_len(), 1).unwrap();
        backend.activation_bwd(&relu, &xb, &xb, &mut want).unwrap();
        let want = backend.to_host(&want, p.input_len()).unwrap();
        for (i, (f, w)) in fused.iter().zip(&want).enumerate() {
            // NaN, a cell left unwritten, equals nothing.
            assert!(f == w, "{s:?} on {input}: dx[{i}] {f} vs {w}");
        }
        let avg = params(&s, PoolKind::Avg, input, 3).unwrap();
        assert!(backward(backend, &avg, &x, &g, true).is_err());
    }
}

#[test]
fn max_pool_through_a_relu_matches_the_two_passes_on_cpu() {
    check_through_relu(&Cpu::with_threads(2).unwrap());
    check_through_relu(&Cpu::portable(2).unwrap());
}

#[cfg(feature = "cuda")]
#[test]
fn max_pool_through_a_relu_matches_the_two_passes_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        check_through_relu(&gpu);
    }
}

#[test]
fn max_pool_routes_a_tied_window_to_one_cell() {
    // After ReLU whole windows are often zero: the gradient must go to one cell
    // (the first), as in PyTorch, not to every tied cell.
    let cpu = Cpu::with_threads(2).unwrap();
    let input = Shape::new(&[4, 4, 3]);
    let p = params(&spec(2, 2, Padding::Valid), PoolKind::Max, input, 2).unwrap();
    let x = vec![0.0; p.input_len()];
    let dx = backward(&cpu, &p, &x, &vec![1.0; p.output_len()], false).unwrap();
    assert_eq!(dx.iter().sum::<f32>(), p.output_len() as f32);
    // The first cell of each window, (0, 0) of each 2x2 block, takes it.
    for (i, v) in dx.iter().enumerate() {
        let (yy, xx) = ((i / 3 / 4) % 4, (i / 3) % 4);
        let want = if yy % 2 == 0 && xx % 2 == 0 { 1.0 } else { 0.0 };
        assert_eq!(*v, want, "dx[{i}]");
    }
}

#[cfg(feature = "cuda")]
#[test]
fn pools_and_backpropagates_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        check(&gpu);
    }
}

/// `(y, dx)` of `p` on `backend`.
#[cfg(feature = "cuda")]
fn forward_backward<B: Pool2dKernel>(
    backend: &B,
    p: &Pool2dParams,
    x: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let xb = backend.alloc_from(x).unwrap();
    let mut yb = backend.alloc(p.output_len()).unwrap();
    let mut reserve = backend.alloc(backend.pool2d_reserve_len(p)).unwrap();
    backend
        .pool2d_fwd(p, &xb, &mut yb, Some(&mut reserve))
        .unwrap();
    let dyb = backend.alloc_from(dy).unwrap();
    let mut dxb = backend.alloc_from(&vec![7.0; p.input_len()]).unwrap();
    let fwd = PoolForward {
        x: &xb,
        y: &yb,
        reserve: Some(&reserve),
    };
    backend.pool2d_bwd(p, fwd, &dyb, &mut dxb).unwrap();
    (
        backend.to_host(&yb, p.output_len()).unwrap(),
        backend.to_host(&dxb, p.input_len()).unwrap(),
    )
}

/// The GPU against the CPU, bit for bit (the same terms added in the same order), for
/// max and average pooling with overlapping, padded and global windows, and with ties
/// (inputs rounded to a few values, as after a ReLU).
#[cfg(feature = "cuda")]
#[test]
fn cuda_matches_cpu_bit_for_bit() {
    let Some(gpu) = crate::cuda::test_device() else {
        return;
    };
    let cpu = Cpu::with_threads(2).unwrap();
    let geometries = [
        (Shape::new(&[8, 8, 3]), spec(2, 2, Padding::Valid)),
        (Shape::new(&[7, 9, 5]), spec(3, 2, Padding::Same)),
        (Shape::new(&[6, 6, 70]), spec(3, 1, Padding::Valid)),
        (Shape::new(&[5, 5, 2]), spec(5, 5, Padding::Valid)),
    ];
    for (input, s) in geometries {
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let p = params(&s, kind, input, 3).unwrap();
            let mut rng = Rng::new(5);
            let x: Vec<f32> = (0..p.input_len())
                .map(|_| (rng.uniform_in(-2.0, 2.0) * 2.0).round().max(0.0))
                .collect();
            let dy: Vec<f32> = (0..p.output_len())
                .map(|_| rng.uniform_in(-1.0, 1.0))
                .collect();
            let (yc, dc) = forward_backward(&cpu, &p, &x, &dy);
            let (yg, dg) = forward_backward(&gpu, &p, &x, &dy);
            assert_eq!(yc, yg, "{kind:?} {input}: forward");
            assert_eq!(dc, dg, "{kind:?} {input}: backward");
        }
    }
}
