// 2-D pooling on NHWC batches. The forward has one thread an output value. Max
// pooling whose windows tile the input (stride = size, no padding: the usual
// `MaxPool(2)`) goes back with one thread an output value too, which writes each cell
// of its window once; every other pooling with one thread an input value, which
// gathers from every window that covers it in the order the CPU backend scatters
// (output cells in row-major order), so both add the same terms in the same order.
// Either backward can take the ReLU below the pooling along: a window whose maximum
// is not positive passes no gradient. A cell that takes no gradient gets +0, as on
// the CPU. The index arithmetic is 32-bit wherever the tensors allow it.

struct Pool2dParams {
    u32 batch;
    u32 in_h;
    u32 in_w;
    u32 channels;
    u32 out_h;
    u32 out_w;
    u32 size_h;
    u32 size_w;
    u32 stride_h;
    u32 stride_w;
    u32 pad_top;
    u32 pad_left;
    u32 kind;
};

enum { POOL_MAX = 0, POOL_AVG = 1 };

// The input rows [y0, y1) and columns [x0, x1) of output cell (oy, ox), clipped.
struct Window {
    int y0, y1, x0, x1;
};

__device__ __forceinline__ Window window_of(const Pool2dParams& p, int oy, int ox) {
    int y0 = oy * (int)p.stride_h - (int)p.pad_top;
    int x0 = ox * (int)p.stride_w - (int)p.pad_left;
    Window w;
    w.y1 = min(y0 + (int)p.size_h, (int)p.in_h);
    w.x1 = min(x0 + (int)p.size_w, (int)p.in_w);
    w.y0 = max(y0, 0);
    w.x0 = max(x0, 0);
    w.y1 = max(w.y1, 0);
    w.x1 = max(w.x1, 0);
    return w;
}

__device__ __forceinline__ float inv_count(const Window& w) {
    int count = (w.y1 - w.y0) * (w.x1 - w.x0);
    return 1.0f / (float)(count > 1 ? count : 1);
}

// Output value `i`: (image n, row oy, column ox, channel c).
template <typename I>
struct OutputCell {
    I n;
    int oy, ox;
    I c;
    __device__ __forceinline__ OutputCell(const Pool2dParams& p, I i) {
        I c_n = p.channels;
        c = i % c_n;
        I cell = i / c_n;
        ox = (int)(cell % p.out_w);
        cell /= p.out_w;
        oy = (int)(cell % p.out_h);
        n = cell / p.out_h;
    }
};

template <typename I>
__device__ __forceinline__ void forward_at(const Pool2dParams& p, const float* x, float* y, I i) {
    OutputCell<I> o(p, i);
    I c_n = p.channels;
    const float* image = x + o.n * p.in_h * p.in_w * c_n + o.c;
    Window w = window_of(p, o.oy, o.ox);
    float acc;
    if (p.kind == POOL_MAX) {
        acc = -KILN_INFINITY;
        for (int yy = w.y0; yy < w.y1; ++yy)
            for (int xx = w.x0; xx < w.x1; ++xx) {
                float v = image[((I)yy * p.in_w + xx) * c_n];
                acc = v > acc ? v : acc;
            }
    } else {
        acc = 0.0f;
        for (int yy = w.y0; yy < w.y1; ++yy)
            for (int xx = w.x0; xx < w.x1; ++xx) acc += image[((I)yy * p.in_w + xx) * c_n];
        acc = acc * inv_count(w);
    }
    y[i] = acc;
}

// The larger of the input and output lengths, which bounds every index.
__device__ __forceinline__ u64 pool_extent(const Pool2dParams& p) {
    u64 images = (u64)p.batch * p.channels;
    u64 in = images * p.in_h * p.in_w, out = images * p.out_h * p.out_w;
    return in > out ? in : out;
}

extern "C" __global__ void pool2d_fwd_f32(Pool2dParams p, const float* x, float* y) {
    u64 total = (u64)p.batch * p.out_h * p.out_w * p.channels;
    KILN_FOR_EACH(i, total, pool_extent(p), forward_at(p, x, y, i));
}

// Max pooling with tiling windows, from output value `i`: the window's first cell
// equal to the maximum takes the gradient, the others get +0, and so do the cells
// past the last window that the last row or column of windows covers.
template <typename I>
__device__ __forceinline__ void tiled_backward_at(const Pool2dParams& p, const float* x,
                                                  const float* y, const float* dy, float* dx,
                                                  u32 relu, I i) {
    OutputCell<I> o(p, i);
    I c_n = p.channels, row = (I)p.in_w * c_n;
    u32 y0 = (u32)o.oy * p.size_h, x0 = (u32)o.ox * p.size_w;
    I base = ((o.n * p.in_h + y0) * p.in_w + x0) * c_n + o.c;
    float best = y[i], g = dy[i];
    bool open = relu == 0u || best > 0.0f;
    for (u32 a = 0; a < p.size_h; ++a)
        for (u32 b = 0; b < p.size_w; ++b) {
            I at = base + a * row + b * c_n;
            bool hit = open && x[at] == best;
            dx[at] = hit ? g : 0.0f;
            open = open && !hit;
        }
    bool last_col = (u32)o.ox + 1 == p.out_w, last_row = (u32)o.oy + 1 == p.out_h;
    u32 x1 = last_col ? p.in_w : x0 + p.size_w;
    if (last_col)
        for (u32 a = 0; a < p.size_h; ++a)
            for (u32 xx = x0 + p.size_w; xx < x1; ++xx) dx[base + a * row + (xx - x0) * c_n] = 0.0f;
    if (last_row)
        for (u32 yy = y0 + p.size_h; yy < p.in_h; ++yy)
            for (u32 xx = x0; xx < x1; ++xx) dx[base + (yy - y0) * row + (xx - x0) * c_n] = 0.0f;
}

extern "C" __global__ void pool2d_tiled_bwd_f32(Pool2dParams p, const float* x, const float* y,
                                                const float* dy, float* dx, u32 relu) {
    u64 total = (u64)p.batch * p.out_h * p.out_w * p.channels;
    KILN_FOR_EACH(i, total, pool_extent(p), tiled_backward_at(p, x, y, dy, dx, relu, i));
}

// The output rows (or columns) whose windows cover input row `v`: [lo, hi].
__device__ __forceinline__ void covering(int v, int pad, int size, int stride, int out, int* lo,
                                         int* hi) {
    int a = v + pad - size + 1;
    *lo = a <= 0 ? 0 : (a + stride - 1) / stride;
    *hi = min((v + pad) / stride, out - 1);
}

// Any pooling, from input value `i`: the sum over the windows that cover it.
template <typename I>
__device__ __forceinline__ void backward_at(const Pool2dParams& p, const float* x,
                                            const float* y, const float* dy, float* dx,
                                            u32 relu, I i) {
    I c_n = p.channels;
    I c = i % c_n;
    I cell = i / c_n;
    int ix = (int)(cell % p.in_w);
    cell /= p.in_w;
    int iy = (int)(cell % p.in_h);
    I n = cell / p.in_h;
    const float* image = x + n * p.in_h * p.in_w * c_n + c;
    I out_base = n * p.out_h * p.out_w;
    float v = x[i];
    int oy0, oy1, ox0, ox1;
    covering(iy, p.pad_top, p.size_h, p.stride_h, p.out_h, &oy0, &oy1);
    covering(ix, p.pad_left, p.size_w, p.stride_w, p.out_w, &ox0, &ox1);
    float d = 0.0f;
    for (int oy = oy0; oy <= oy1; ++oy) {
        for (int ox = ox0; ox <= ox1; ++ox) {
            I at = (out_base + (I)oy * p.out_w + ox) * c_n + c;
            float g = dy[at];
            Window w = window_of(p, oy, ox);
            if (p.kind == POOL_MAX) {
                // This cell takes the gradient if it is the window's first cell equal
                // to the output (and, through a ReLU, the output is positive).
                float best = y[at];
                bool hit = v == best && (relu == 0u || best > 0.0f);
                for (int yy = w.y0; yy <= iy && hit; ++yy) {
                    int x_end = yy < iy ? w.x1 : ix;
                    for (int xx = w.x0; xx < x_end; ++xx) {
                        if (image[((I)yy * p.in_w + xx) * c_n] == best) {
                            hit = false;
                            break;
                        }
                    }
                }
                if (hit) d += g;
            } else {
                d += g * inv_count(w);
            }
        }
    }
    dx[i] = d;
}

extern "C" __global__ void pool2d_bwd_f32(Pool2dParams p, const float* x, const float* y,
                                          const float* dy, float* dx, u32 relu) {
    u64 total = (u64)p.batch * p.in_h * p.in_w * p.channels;
    KILN_FOR_EACH(i, total, pool_extent(p), backward_at(p, x, y, dy, dx, relu, i));
}
