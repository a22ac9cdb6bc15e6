//! The forward pass and both gradients, block by block on the CPU's pool: the
//! forward transforms the kernel once and each block's input, multiplies and
//! transforms back; the gradients transform each block's output gradient once for
//! both the kernel's gradient (summed per task, then transformed back) and the
//! input's (scattered over whole images, which a task owns).

use super::POSITIONS;
use super::plan::{Tiles, gradient_plan, plan};
use super::transforms::{
    Layout, scatter_input_gradient, transform_input, transform_kernel, transform_output,
    transform_output_gradient,
};
use crate::Cpu;
use crate::cpu::SendPtr;
use crate::cpu::gemm::{Epilogue, Isa, MatMut, MatRef, PACKED_STRIP, packed_len, sgemm_prepacked};
use crate::ops::InputGrad;
use crate::ops::conv2d::Conv2dParams;
use crate::ops::us;

/// `y = act(conv(x, w) + bias)`; the slices have been checked against `p`, and `ws`
/// holds [`workspace_len`](super::workspace_len) values.
pub(in crate::ops::conv2d) fn forward(
    cpu: &Cpu,
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    epilogue: &Epilogue<'_>,
    y: &mut [f32],
    ws: &mut [f32],
) {
    // Kernel layout `[3, 3, c_in, c_out]`.
    let (c_in, c_out) = (us(p.in_c), us(p.out_c));
    let tap = |ky: usize, kx: usize, c: usize, k: usize| w[((ky * 3 + kx) * c_in + c) * c_out + k];
    convolve(cpu, p, x, tap, epilogue, y, ws);
}

/// `dw += dL/dw` and, where `dx` is given, `dx = dL/dx` (or `dx += dL/dx` where it
/// accumulates), from the forward's input `x`, the kernel `w` and the output gradient
/// `dy` (at the pre-activation), for a geometry that [`applies`](super::applies); `ws`
/// holds [`gradients_workspace_len`](super::gradients_workspace_len) values.
///
/// Per block of tiles: `Z = A dY Aᵀ`; `dU[ξ] += V[ξ]ᵀ Z[ξ]`, each task summing its
/// blocks into a buffer of its own, added up and turned into the kernel's gradient by
/// `dw = Gᵀ dU G` once per channel pair; and for the input gradient `dV[ξ] = Z[ξ]
/// U[ξ]ᵀ`, `dx += B dV Bᵀ` over each tile's input block (overlapping its neighbours'
/// by two pixels: a task owns whole images).
#[allow(clippy::too_many_arguments)]
pub(in crate::ops::conv2d) fn gradients(
    cpu: &Cpu,
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    dx: Option<InputGrad<'_, [f32]>>,
    ws: &mut [f32],
) {
    let plan = gradient_plan(p);
    let (c, k) = (us(p.in_c), us(p.out_c));
    let threads = cpu.threads();
    let per_worker = plan.v_len + plan.z_len + plan.sum_len;
    assert!(
        ws.len() >= plan.u_len + threads * per_worker,
        "winograd: short scratch"
    );
    assert!(
        x.len() >= p.input_len() && dy.len() >= p.output_len() && dw.len() >= 9 * c * k,
        "winograd: short operand"
    );
    let (ut, ws) = ws.split_at_mut(plan.u_len);
    let dx = match dx {
        Some(InputGrad {
            buffer: dx,
            accumulate,
        }) => {
            assert!(dx.len() >= p.input_len(), "winograd: short input gradient");
            // `Uᵀ`: the kernel's transform with the channel axes swapped.
            let q = Conv2dParams {
                in_c: p.out_c,
                out_c: p.in_c,
                ..*p
            };
            let tap = |ky: usize, kx: usize, o: usize, i: usize| w[((ky * 3 + kx) * c + i) * k + o];
            transform_kernel(cpu, &q, tap, ut);
            Some((SendPtr(dx.as_mut_ptr()), accumulate))
        }
        None => None,
    };
    let ut: &[f32] = ut;
    let ws = &mut ws[..threads * per_worker];
    for mine in ws.chunks_exact_mut(per_worker) {
        mine[plan.v_len + plan.z_len..].fill(0.0);
    }
    let scratch = SendPtr(ws.as_mut_ptr());
    let isa = cpu.inner().gemm.isa();
    // One task per thread, each over a fixed run of blocks with a sum of its own, so
    // that the result does not depend on which worker takes which block.
    let blocks = plan.tiles.tiles.div_ceil(plan.tiles.block);
    let per_task = blocks.div_ceil(threads);
    let per_image = plan.tiles.tiles_h * plan.tiles.tiles_w;
    let image_len = us(p.in_h) * us(p.in_w) * c;
    let task = |t: usize, _worker: usize| {
        // SAFETY: `t < threads` (the tasks below), so this part of the scratch exists
        // (checked above), and only task `t` uses it.
        let mine = unsafe {
            std::slice::from_raw_parts_mut(scratch.get().add(t * per_worker), per_worker)
        };
        let (v, rest) = mine.split_at_mut(plan.v_len);
        let (z, sum) = rest.split_at_mut(plan.z_len);
        for b in t * per_task..blocks.min((t + 1) * per_task) {
            let first = b * plan.tiles.block;
            let count = plan.tiles.block.min(plan.tiles.tiles - first);
            gradient_block(isa, p, &plan.tiles, (x, dy), first, count, (v, z), sum);
            if let Some((dx, accumulate)) = dx {
                // SAFETY: blocks hold whole images (`gradient_plan`), so these images'
                // input gradients, inside `dx` (checked above), belong to this task.
                let images = unsafe {
                    std::slice::from_raw_parts_mut(
                        dx.get().add(first / per_image * image_len),
                        count / per_image * image_len,
                    )
                };
                let images = InputGrad {
                    buffer: images,
                    accumulate,
                };
                input_gradient_block(isa, p, &plan.tiles, (z, ut), first, count, v, images);
            }
        }
    };
    cpu.inner().pool.run(blocks.div_ceil(per_task), &task);

    // The tasks' sums, added into the first one's, in order.
    let (total, others) = ws.split_at_mut(per_worker);
    let total = &mut total[plan.v_len + plan.z_len..];
    for other in others.chunks_exact(per_worker) {
        for (t, o) in total.iter_mut().zip(&other[plan.v_len + plan.z_len..]) {
            *t += o;
        }
    }
    // `dw += Gᵀ dU G`, with `Gᵀ x = [x0 + ½(x1 + x2), ½(x1 - x2), ½(x1 + x2) + x3]`.
    let gt = |x: [f32; 4]| {
        let (s, d) = (0.5 * (x[1] + x[2]), 0.5 * (x[1] - x[2]));
        [x[0] + s, d, s + x[3]]
    };
    for o in 0..k {
        for i in 0..c {
            let du = |xi: usize| total[(xi * k + o) * c + i];
            // `Gᵀ dU`: along the rows (the kernel's `ky`), column by column.
            let columns: [[f32; 3]; 4] =
                std::array::from_fn(|col| gt([du(col), du(4 + col), du(8 + col), du(12 + col)]));
            for ky in 0..3 {
                let row = gt(columns.map(|col| col[ky]));
                for (kx, g) in row.into_iter().enumerate() {
                    dw[((ky * 3 + kx) * c + i) * k + o] += g;
                }
            }
        }
    }
}

/// Adds `dU[ξ]ᵀ` of tiles `first..first + count` into `sum`, with `v` and `z` for
/// the block's transforms.
#[allow(clippy::too_many_arguments)]
fn gradient_block(
    isa: Isa,
    p: &Conv2dParams,
    plan: &Tiles,
    (x, dy): (&[f32], &[f32]),
    first: usize,
    count: usize,
    (v, z): (&mut [f32], &mut [f32]),
    sum: &mut [f32],
) {
    let (c, k) = (us(p.in_c), us(p.out_c));
    let v_plane = packed_len(count, c);
    let v = &mut v[..POSITIONS * v_plane];
    if !c.is_multiple_of(PACKED_STRIP) {
        // The last strip's columns past `c_in` are read by the products (and their
        // results dropped): zeros, never stale values.
        v.fill(0.0);
    }
    transform_input(isa, p, plan, x, first, count, Layout::Packed, v);
    let z = &mut z[..POSITIONS * count * k];
    transform_output_gradient(isa, p, plan, dy, first, count, z);
    for xi in 0..POSITIONS {
        // `dU[ξ]ᵀ += Z[ξ]ᵀ V[ξ]`: `(c_out x tiles) x (tiles x c_in)`.
        let zt = MatRef {
            data: &z[xi * count * k..][..count * k],
            rows: k,
            cols: count,
            row_stride: 1,
            col_stride: k,
        };
        sgemm_prepacked(
            isa,
            zt,
            &v[xi * v_plane..][..v_plane],
            c,
            1.0,
            MatMut::row_major(&mut sum[xi * k * c..][..k * c], k, c),
        );
    }
}

/// The input gradient of tiles `first..first + count` (whole images) into `images`,
/// their input gradients (zeroed first unless they accumulate): `dV[ξ] = Z[ξ] U[ξ]ᵀ`
/// into `dv`, then `B dV Bᵀ` added over each tile's input block.
#[allow(clippy::too_many_arguments)]
fn input_gradient_block(
    isa: Isa,
    p: &Conv2dParams,
    plan: &Tiles,
    (z, ut): (&[f32], &[f32]),
    first: usize,
    count: usize,
    dv: &mut [f32],
    images: InputGrad<'_, [f32]>,
) {
    let (c, k) = (us(p.in_c), us(p.out_c));
    let packed = packed_len(k, c);
    let plane = count * c;
    for xi in 0..POSITIONS {
        sgemm_prepacked(
            isa,
            MatRef::row_major(&z[xi * count * k..][..count * k], count, k),
            &ut[xi * packed..][..packed],
            c,
            0.0,
            MatMut::row_major(&mut dv[xi * plane..][..plane], count, c),
        );
    }
    if !images.accumulate {
        images.buffer.fill(0.0);
    }
    let dv = &dv[..POSITIONS * plane];
    scatter_input_gradient(isa, p, plan, dv, first, count, images.buffer);
}

/// `y = act(conv(x, g) + bias)` with the kernel given tap by tap:
/// `tap(ky, kx, c, k)`.
fn convolve(
    cpu: &Cpu,
    p: &Conv2dParams,
    x: &[f32],
    tap: impl Fn(usize, usize, usize, usize) -> f32 + Sync,
    epilogue: &Epilogue<'_>,
    y: &mut [f32],
    ws: &mut [f32],
) {
    let plan = plan(p);
    let (c, k) = (us(p.in_c), us(p.out_c));
    let (u, scratch) = ws.split_at_mut(plan.u_len);
    transform_kernel(cpu, p, tap, u);
    let u: &[f32] = u;
    let per_worker = plan.v_len + plan.m_len;
    assert!(
        scratch.len() >= cpu.threads() * per_worker,
        "winograd: short scratch"
    );
    assert!(y.len() >= p.output_len(), "winograd: short output");
    let scratch = SendPtr(scratch.as_mut_ptr());
    let y = SendPtr(y.as_mut_ptr());
    let isa = cpu.inner().gemm.isa();
    let packed = packed_len(c, k);
    let task = |t: usize, worker: usize| {
        let first = t * plan.tiles.block;
        let count = plan.tiles.block.min(plan.tiles.tiles - first);
        // SAFETY: `worker < threads`, and the pool runs one task at a time per worker,
        // so this worker's part of the scratch (checked to exist above) is used by this
        // task alone.
        let mine = unsafe {
            std::slice::from_raw_parts_mut(scratch.get().add(worker * per_worker), per_worker)
        };
        let (v, m) = mine.split_at_mut(plan.v_len);
        let (v, m) = (
            &mut v[..POSITIONS * count * c],
            &mut m[..POSITIONS * count * k],
        );
        transform_input(isa, p, &plan.tiles, x, first, count, Layout::Rows, v);
        for xi in 0..POSITIONS {
            sgemm_prepacked(
                isa,
                MatRef::row_major(&v[xi * count * c..][..count * c], count, c),
                &u[xi * packed..][..packed],
                k,
                0.0,
                MatMut::row_major(&mut m[xi * count * k..][..count * k], count, k),
            );
        }
        // SAFETY: the output pixels of tiles `first..first + count` belong to this task
        // alone, and `y` holds every output pixel (checked above).
        unsafe { transform_output(isa, p, &plan.tiles, m, first, count, epilogue, y) };
    };
    let blocks = plan.tiles.tiles.div_ceil(plan.tiles.block);
    cpu.inner().pool.run(blocks, &task);
}
