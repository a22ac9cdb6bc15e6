//! The block transforms in plain Rust, eight channels (one AVX vector) at a time, on
//! fixed-size arrays that the compiler keeps in registers. Each takes an optional
//! transform of whole tiles: given one (the AVX2 code, under a `#[target_feature]`
//! caller), the tiles whose channels fill whole vectors go through it, edge tiles
//! through a zero-padded copy of their block; without one, every tile runs here.

use super::plan::Tiles;
use super::transforms::{Layout, channel_offset};
use super::{LANES, POSITIONS};
use crate::cpu::SendPtr;
use crate::cpu::gemm::Epilogue;
use crate::ops::activation::ActivationKind;
use crate::ops::conv2d::Conv2dParams;
use crate::ops::us;

/// The most input channels whose edge tiles' blocks (16 pixels) are copied to the
/// stack for the AVX2 transform; wider layers transform their edge tiles with the
/// portable code.
const MAX_EDGE_CHANNELS: usize = 256;

/// `len <= LANES` values of `src` from `at`, zero after them; a whole vector is one
/// fixed-size load (a variable-length copy would be a `memcpy` call).
#[inline(always)]
fn load(src: &[f32], at: usize, len: usize) -> [f32; LANES] {
    if len == LANES {
        let mut v = [0.0; LANES];
        v.copy_from_slice(&src[at..at + LANES]);
        v
    } else {
        let mut v = [0.0; LANES];
        v[..len].copy_from_slice(&src[at..at + len]);
        v
    }
}

/// Stores the first `len <= LANES` lanes of `v` at `dst[at..]`.
#[inline(always)]
fn store(dst: &mut [f32], at: usize, len: usize, v: &[f32; LANES]) {
    if len == LANES {
        dst[at..at + LANES].copy_from_slice(v);
    } else {
        for (d, x) in dst[at..at + len].iter_mut().zip(v) {
            *d = *x;
        }
    }
}

/// `a - b`, `a + b` lane by lane (plain loops: `array::from_fn`'s closures are not
/// always inlined).
#[inline(always)]
fn sub(mut a: [f32; LANES], b: [f32; LANES]) -> [f32; LANES] {
    for l in 0..LANES {
        a[l] -= b[l];
    }
    a
}

#[inline(always)]
fn add(mut a: [f32; LANES], b: [f32; LANES]) -> [f32; LANES] {
    for l in 0..LANES {
        a[l] += b[l];
    }
    a
}

/// `-a` lane by lane.
#[inline(always)]
fn neg(a: [f32; LANES]) -> [f32; LANES] {
    sub([0.0; LANES], a)
}

/// Four vectors at a time.
type Row = [[f32; LANES]; 4];

#[inline(always)]
fn sub_row(mut a: Row, b: Row) -> Row {
    for k in 0..4 {
        a[k] = sub(a[k], b[k]);
    }
    a
}

#[inline(always)]
fn add_row(mut a: Row, b: Row) -> Row {
    for k in 0..4 {
        a[k] = add(a[k], b[k]);
    }
    a
}

/// The four outputs of `Bᵀ` (or `B` on a row) applied to four inputs.
#[inline(always)]
fn bt(d: [[f32; LANES]; 4]) -> [[f32; LANES]; 4] {
    [
        sub(d[0], d[2]),
        add(d[1], d[2]),
        sub(d[2], d[1]),
        sub(d[1], d[3]),
    ]
}

/// A whole-vector transform of one tile that lies inside the image, for every
/// channel (see [`avx2::input_tile`](super::avx2::input_tile)).
pub(super) type InputTile = unsafe fn(*const f32, usize, usize, *mut f32, usize, usize);

#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn transform_input_with(
    p: &Conv2dParams,
    plan: &Tiles,
    x: &[f32],
    first: usize,
    count: usize,
    layout: Layout,
    v: &mut [f32],
    interior: Option<InputTile>,
) {
    let (ih, iw, c_in) = (us(p.in_h), us(p.in_w), us(p.in_c));
    let per_image = plan.tiles_h * plan.tiles_w;
    let plane = layout.plane(count, c_in);
    assert!(
        v.len() >= POSITIONS * plane,
        "winograd: short transform buffer"
    );
    // An edge tile's input block, with zeros outside the image.
    let mut edge_block = [0.0f32; POSITIONS * MAX_EDGE_CHANNELS];
    for i in 0..count {
        let tile = first + i;
        let (n, r) = (tile / per_image, tile % per_image);
        let (ty, tx) = (r / plan.tiles_w, r % plan.tiles_w);
        let y0 = (2 * ty) as isize - p.pad_top as isize;
        let x0 = (2 * tx) as isize - p.pad_left as isize;
        let image = &x[n * ih * iw * c_in..(n + 1) * ih * iw * c_in];
        let (start, strip) = layout.tile(i, count, c_in);
        if let Some(tile_fn) = interior
            && c_in.is_multiple_of(LANES)
            && c_in <= MAX_EDGE_CHANNELS
        {
            let inside = y0 >= 0 && x0 >= 0 && y0 as usize + 4 <= ih && x0 as usize + 4 <= iw;
            if inside {
                let at = (y0 as usize * iw + x0 as usize) * c_in;
                // SAFETY: the 4x4 block lies inside the image (checked), so every pixel
                // `at + a * iw * c_in + b * c_in` and its `c_in` channels are in `image`;
                // position `ξ` of this tile's channels, at most
                // `ξ * plane + start + channel_offset(c_in - 1, strip)`, is inside its
                // plane, inside `v` (checked above); `tile_fn` needs AVX2, which the
                // caller that passed it has.
                unsafe {
                    tile_fn(
                        image[at..].as_ptr(),
                        iw * c_in,
                        c_in,
                        v[start..].as_mut_ptr(),
                        plane,
                        strip,
                    );
                }
            } else {
                // An edge tile: its block copied into one with zeros outside the
                // image, then the same transform.
                let block = &mut edge_block[..POSITIONS * c_in];
                for (a, rows) in block.chunks_exact_mut(4 * c_in).enumerate() {
                    let yy = y0 + a as isize;
                    for (b, cell) in rows.chunks_exact_mut(c_in).enumerate() {
                        let xx = x0 + b as isize;
                        if (0..ih as isize).contains(&yy) && (0..iw as isize).contains(&xx) {
                            let at = (yy as usize * iw + xx as usize) * c_in;
                            cell.copy_from_slice(&image[at..at + c_in]);
                        } else {
                            cell.fill(0.0);
                        }
                    }
                }
                // SAFETY: the block holds 16 pixels of `c_in` channels, `4 * c_in`
                // values a row; the writes are as above; `tile_fn` needs AVX2, which the
                // caller that passed it has.
                unsafe {
                    tile_fn(
                        block.as_ptr(),
                        4 * c_in,
                        c_in,
                        v[start..].as_mut_ptr(),
                        plane,
                        strip,
                    );
                }
            }
            continue;
        }
        for c0 in (0..c_in).step_by(LANES) {
            let len = LANES.min(c_in - c0);
            let row = |a: usize| input_row(image, (ih, iw, c_in), y0 + a as isize, x0, c0, len);
            // Row `a` of `Bᵀ d`, transformed along the row, is row `a` of `V`.
            let base = |a: usize| a * 4 * plane + start + channel_offset(c0, strip);
            // The rows of `Bᵀ d` one at a time, so that few values are live at once.
            let d2 = row(2);
            emit_row(v, sub_row(row(0), d2), base(0), plane, len);
            let d1 = row(1);
            emit_row(v, add_row(d1, d2), base(1), plane, len);
            emit_row(v, sub_row(d2, d1), base(2), plane, len);
            emit_row(v, sub_row(d1, row(3)), base(3), plane, len);
        }
    }
}

/// Channels `c0..c0 + len` of the four pixels from `x0` on in row `yy` of `image`:
/// a row of a tile's input block, zero outside the image.
#[inline(always)]
fn input_row(
    image: &[f32],
    (ih, iw, c_in): (usize, usize, usize),
    yy: isize,
    x0: isize,
    c0: usize,
    len: usize,
) -> Row {
    let mut r = [[0.0; LANES]; 4];
    if (0..ih as isize).contains(&yy) {
        for (b, cell) in r.iter_mut().enumerate() {
            let xx = x0 + b as isize;
            if (0..iw as isize).contains(&xx) {
                *cell = load(image, (yy as usize * iw + xx as usize) * c_in + c0, len);
            }
        }
    }
    r
}

/// Row `t` of `Bᵀ d` transformed along the row, stored as positions `base`,
/// `base + plane`, ... of `v`.
#[inline(always)]
fn emit_row(v: &mut [f32], t: Row, base: usize, plane: usize, len: usize) {
    for (b, val) in bt(t).iter().enumerate() {
        store(v, base + b * plane, len, val);
    }
}

/// Four consecutive positions of a tile's products from `base`, `plane` apart.
#[inline(always)]
fn product_row(m: &[f32], base: usize, plane: usize, len: usize) -> Row {
    let mut r = [[0.0; LANES]; 4];
    for (b, cell) in r.iter_mut().enumerate() {
        *cell = load(m, base + b * plane, len);
    }
    r
}

/// A whole-vector transform of one tile whose four pixels exist, for every channel
/// (see [`avx2::output_tile`](super::avx2::output_tile)).
pub(super) type OutputTile = unsafe fn(*const f32, usize, *mut f32, usize, usize, *const f32, bool);

/// The two outputs of `Aᵀ` applied to four inputs.
#[inline(always)]
fn at(m: [[f32; LANES]; 4]) -> [[f32; LANES]; 2] {
    [add(add(m[0], m[1]), m[2]), sub(sub(m[1], m[2]), m[3])]
}

/// # Safety
/// As [`transform_output`](super::transforms::transform_output).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn transform_output_with(
    p: &Conv2dParams,
    plan: &Tiles,
    m: &[f32],
    first: usize,
    count: usize,
    epilogue: &Epilogue<'_>,
    y: SendPtr<f32>,
    interior: Option<OutputTile>,
) {
    let (oh, ow, c_out) = (us(p.out_h), us(p.out_w), us(p.out_c));
    let per_image = plan.tiles_h * plan.tiles_w;
    let plane = count * c_out;
    assert!(
        m.len() >= POSITIONS * plane,
        "winograd: short products buffer"
    );
    if let Some(bias) = epilogue.bias {
        assert!(bias.len() >= c_out, "winograd: short bias");
    }
    // The bias and ReLU go into the store; other activations over each pixel after.
    let (relu, after) = match epilogue.activation {
        ActivationKind::Linear => (false, false),
        ActivationKind::Relu => (true, false),
        _ => (false, true),
    };
    for i in 0..count {
        let tile = first + i;
        let (n, r) = (tile / per_image, tile % per_image);
        let (ty, tx) = (r / plan.tiles_w, r % plan.tiles_w);
        // Where the tile's pixels start in `y`, for those that exist.
        let pixel = |a: usize, b: usize| {
            let (oy, ox) = (2 * ty + a, 2 * tx + b);
            (oy < oh && ox < ow).then_some(((n * oh + oy) * ow + ox) * c_out)
        };
        let pixels = [[pixel(0, 0), pixel(0, 1)], [pixel(1, 0), pixel(1, 1)]];
        if let Some(tile_fn) = interior
            && !after
            && c_out.is_multiple_of(LANES)
        {
            let bias = epilogue.bias.map_or(std::ptr::null(), <[f32]>::as_ptr);
            let whole = 2 * ty + 2 <= oh && 2 * tx + 2 <= ow;
            if whole {
                // SAFETY: the tile's four pixels exist (checked), so their `c_out`
                // channels lie inside `y`, and this task alone writes them (the
                // caller's contract); position `ξ` of the tile, up to
                // `15 * plane + i * c_out + c_out`, lies inside `m`, and a bias holds
                // `c_out` values (both checked above); `tile_fn` needs AVX2, which the
                // caller that passed it has.
                unsafe {
                    tile_fn(
                        m[i * c_out..].as_ptr(),
                        plane,
                        y.get().add(((n * oh + 2 * ty) * ow + 2 * tx) * c_out),
                        ow * c_out,
                        c_out,
                        bias,
                        relu,
                    );
                }
            } else {
                // Half a tile: eight channels at a time into a 2x2 block, of which the
                // pixels that exist are stored.
                for k0 in (0..c_out).step_by(LANES) {
                    let mut block = [[0.0f32; LANES]; 4];
                    // SAFETY: position `ξ` of these channels, up to
                    // `15 * plane + i * c_out + k0 + LANES`, lies inside `m`, and a bias
                    // holds `c_out` values (both checked above); the block holds four
                    // pixels of `LANES` channels, two a row; `tile_fn` needs AVX2, which
                    // the caller that passed it has.
                    unsafe {
                        tile_fn(
                            m[i * c_out + k0..].as_ptr(),
                            plane,
                            block.as_mut_ptr().cast(),
                            2 * LANES,
                            LANES,
                            if bias.is_null() { bias } else { bias.add(k0) },
                            relu,
                        );
                    }
                    for (val, start) in block.iter().zip(pixels.iter().flatten()) {
                        let Some(start) = start else { continue };
                        // SAFETY: the pixel exists, so channels `k0..k0 + LANES` of it
                        // lie inside `y`, and this task alone writes them (the caller's
                        // contract).
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                val.as_ptr(),
                                y.get().add(start + k0),
                                LANES,
                            );
                        }
                    }
                }
            }
            continue;
        }
        for k0 in (0..c_out).step_by(LANES) {
            let len = LANES.min(c_out - k0);
            let row = |a: usize| product_row(m, (a * 4 * count + i) * c_out + k0, plane, len);
            // The two rows of `Aᵀ M`: `m0 + m1 + m2` and `m1 - m2 - m3`.
            let (m1, m2) = (row(1), row(2));
            let rows = [
                add_row(row(0), add_row(m1, m2)),
                sub_row(sub_row(m1, m2), row(3)),
            ];
            let bias = match epilogue.bias {
                Some(bias) => load(bias, k0, len),
                None => [0.0; LANES],
            };
            for (r, starts) in rows.into_iter().zip(pixels) {
                for (val, start) in at(r).into_iter().zip(starts) {
                    let Some(start) = start else { continue };
                    let mut val = add(val, bias);
                    if relu {
                        // `x < 0` is false for NaN, which therefore propagates.
                        for x in &mut val {
                            *x = if *x < 0.0 { 0.0 } else { *x };
                        }
                    }
                    // SAFETY: the pixel exists, so channels `k0..k0 + len` of it lie
                    // inside `y`, and this task alone writes them (the caller's
                    // contract).
                    unsafe {
                        let dst = y.get().add(start + k0);
                        if len == LANES {
                            std::ptr::copy_nonoverlapping(val.as_ptr(), dst, LANES);
                        } else {
                            std::ptr::copy_nonoverlapping(val.as_ptr(), dst, len);
                        }
                    }
                }
            }
        }
        if after {
            let activation = Epilogue {
                bias: None,
                ..*epilogue
            };
            for start in pixels.into_iter().flatten().flatten() {
                // SAFETY: as for the stores above; the row is dropped before the next.
                let row = unsafe { std::slice::from_raw_parts_mut(y.get().add(start), c_out) };
                activation.apply(row, 0);
            }
        }
    }
}

/// A whole-vector transform of one tile's output gradient, for every channel (see
/// [`avx2::output_gradient_tile`](super::avx2::output_gradient_tile)).
pub(super) type GradientTile = unsafe fn(*const f32, usize, usize, *mut f32, usize);

#[inline(always)]
pub(super) fn transform_output_gradient_with(
    p: &Conv2dParams,
    plan: &Tiles,
    dy: &[f32],
    first: usize,
    count: usize,
    z: &mut [f32],
    whole_vectors: Option<GradientTile>,
) {
    let (oh, ow, c_out) = (us(p.out_h), us(p.out_w), us(p.out_c));
    let per_image = plan.tiles_h * plan.tiles_w;
    let plane = count * c_out;
    assert!(
        z.len() >= POSITIONS * plane,
        "winograd: short transform buffer"
    );
    assert!(
        dy.len() >= p.output_len(),
        "winograd: short output gradient"
    );
    for i in 0..count {
        let tile = first + i;
        let (n, r) = (tile / per_image, tile % per_image);
        let (ty, tx) = (r / plan.tiles_w, r % plan.tiles_w);
        let pixel = |a: usize, b: usize| {
            let (oy, ox) = (2 * ty + a, 2 * tx + b);
            (oy < oh && ox < ow).then_some(((n * oh + oy) * ow + ox) * c_out)
        };
        let pixels = [pixel(0, 0), pixel(0, 1), pixel(1, 0), pixel(1, 1)];
        if let Some(tile_fn) = whole_vectors
            && c_out.is_multiple_of(LANES)
        {
            if let [Some(at), Some(_), Some(_), Some(_)] = pixels {
                // SAFETY: the tile's four pixels exist, so their `c_out` channels lie
                // inside `dy` (checked above); position `ξ` of the tile, up to
                // `15 * plane + i * c_out + c_out`, lies inside `z` (checked above);
                // `tile_fn` needs AVX2, which the caller that passed it has.
                unsafe {
                    tile_fn(
                        dy[at..].as_ptr(),
                        ow * c_out,
                        c_out,
                        z[i * c_out..].as_mut_ptr(),
                        plane,
                    );
                }
            } else {
                // Half a tile: its pixels, eight channels at a time, copied into a
                // 2x2 block with zeros for those that do not exist.
                for k0 in (0..c_out).step_by(LANES) {
                    let block =
                        pixels.map(|at| at.map_or([0.0; LANES], |at| load(dy, at + k0, LANES)));
                    // SAFETY: the block holds four pixels of `LANES` channels, two a
                    // row; position `ξ` of these channels lies inside `z` (as above).
                    unsafe {
                        tile_fn(
                            block.as_ptr().cast(),
                            2 * LANES,
                            LANES,
                            z[i * c_out + k0..].as_mut_ptr(),
                            plane,
                        );
                    }
                }
            }
            continue;
        }
        for k0 in (0..c_out).step_by(LANES) {
            let len = LANES.min(c_out - k0);
            let [y00, y01, y10, y11] =
                pixels.map(|at| at.map_or([0.0; LANES], |at| load(dy, at + k0, len)));
            // `A dY`: four rows of two; each row `[l, r]` then becomes
            // `[l, l + r, l - r, -r]` along the row.
            let rows = [
                [y00, y01],
                [add(y00, y10), add(y01, y11)],
                [sub(y00, y10), sub(y01, y11)],
                [neg(y10), neg(y11)],
            ];
            for (a, [l, r]) in rows.into_iter().enumerate() {
                let row = [l, add(l, r), sub(l, r), neg(r)];
                for (b, val) in row.iter().enumerate() {
                    store(z, ((4 * a + b) * count + i) * c_out + k0, len, val);
                }
            }
        }
    }
}

/// A whole-vector `dx += B M Bᵀ` of one tile, for every channel (see
/// [`avx2::input_gradient_tile`](super::avx2::input_gradient_tile)).
pub(super) type InputGradientTile = unsafe fn(*const f32, usize, *mut f32, usize, usize);

/// The four outputs of `B` applied to four inputs: `[m0, m1 - m2 + m3, m1 + m2 - m0,
/// -m3]`.
#[inline(always)]
fn b_of(m: Row) -> Row {
    [
        m[0],
        add(sub(m[1], m[2]), m[3]),
        sub(add(m[1], m[2]), m[0]),
        neg(m[3]),
    ]
}

#[inline(always)]
pub(super) fn scatter_input_gradient_with(
    p: &Conv2dParams,
    plan: &Tiles,
    dv: &[f32],
    first: usize,
    count: usize,
    images: &mut [f32],
    whole_vectors: Option<InputGradientTile>,
) {
    let (ih, iw, c_in) = (us(p.in_h), us(p.in_w), us(p.in_c));
    let per_image = plan.tiles_h * plan.tiles_w;
    let plane = count * c_in;
    assert!(
        dv.len() >= POSITIONS * plane && images.len() >= count / per_image * ih * iw * c_in,
        "winograd: short input gradient"
    );
    for i in 0..count {
        let tile = first + i;
        let (n, r) = ((tile - first) / per_image, tile % per_image);
        let (ty, tx) = (r / plan.tiles_w, r % plan.tiles_w);
        let y0 = (2 * ty) as isize - p.pad_top as isize;
        let x0 = (2 * tx) as isize - p.pad_left as isize;
        let image = &mut images[n * ih * iw * c_in..(n + 1) * ih * iw * c_in];
        if let Some(tile_fn) = whole_vectors
            && c_in.is_multiple_of(LANES)
        {
            let inside = y0 >= 0 && x0 >= 0 && y0 as usize + 4 <= ih && x0 as usize + 4 <= iw;
            if inside {
                // SAFETY: the 4x4 block lies inside the image (checked), and position
                // `ξ` of this tile's channels lies inside `dv` (checked above);
                // `tile_fn` needs AVX2, which the caller that passed it has.
                unsafe {
                    tile_fn(
                        dv[i * c_in..].as_ptr(),
                        plane,
                        image[(y0 as usize * iw + x0 as usize) * c_in..].as_mut_ptr(),
                        iw * c_in,
                        c_in,
                    );
                }
            } else {
                // An edge tile: eight channels at a time into a 4x4 block, of which the
                // pixels inside the image are added.
                for c0 in (0..c_in).step_by(LANES) {
                    let mut block = [[0.0f32; LANES]; POSITIONS];
                    // SAFETY: as above, for channels `c0..c0 + LANES`; the block holds
                    // 16 pixels of `LANES` channels, four a row.
                    unsafe {
                        tile_fn(
                            dv[i * c_in + c0..].as_ptr(),
                            plane,
                            block.as_mut_ptr().cast(),
                            4 * LANES,
                            LANES,
                        );
                    }
                    for (j, val) in block.iter().enumerate() {
                        let (yy, xx) = (y0 + (j / 4) as isize, x0 + (j % 4) as isize);
                        if (0..ih as isize).contains(&yy) && (0..iw as isize).contains(&xx) {
                            let at = (yy as usize * iw + xx as usize) * c_in + c0;
                            let cell = load(image, at, LANES);
                            store(image, at, LANES, &add(cell, *val));
                        }
                    }
                }
            }
            continue;
        }
        for c0 in (0..c_in).step_by(LANES) {
            let len = LANES.min(c_in - c0);
            // `B dV`: row `a` of the result from the rows of `dV`, column by column.
            let m = |xi: usize| load(dv, (xi * count + i) * c_in + c0, len);
            let rows: [Row; 4] = {
                let cols: [Row; 4] =
                    std::array::from_fn(|b| b_of([m(b), m(4 + b), m(8 + b), m(12 + b)]));
                std::array::from_fn(|a| [cols[0][a], cols[1][a], cols[2][a], cols[3][a]])
            };
            for (a, row) in rows.into_iter().enumerate() {
                let yy = y0 + a as isize;
                if !(0..ih as isize).contains(&yy) {
                    continue;
                }
                // `(B dV) Bᵀ`: the row transformed along the row.
                for (b, val) in b_of(row).into_iter().enumerate() {
                    let xx = x0 + b as isize;
                    if !(0..iw as isize).contains(&xx) {
                        continue;
                    }
                    let at = (yy as usize * iw + xx as usize) * c_in + c0;
                    let cell = load(image, at, len);
                    store(image, at, len, &add(cell, val));
                }
            }
        }
    }
}
