// 2-D pooling on NHWC batches. The forward has one thread an output value; the
// backward one thread an input value, which gathers from every window that covers it
// in the order the CPU backend scatters (output cells in row-major order), so both
// add the same terms in the same order.

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

extern "C" __global__ void pool2d_fwd_f32(Pool2dParams p, const float* x, float* y) {
    u64 c_n = p.channels;
    u64 total = (u64)p.batch * p.out_h * p.out_w * c_n;
    KILN_FOR(i, total) {
        u32 c = (u32)(i % c_n);
        u64 cell = i / c_n;
        int ox = (int)(cell % p.out_w);
        int oy = (int)((cell / p.out_w) % p.out_h);
        u64 n = cell / ((u64)p.out_w * p.out_h);
        const float* image = x + n * p.in_h * p.in_w * c_n;
        Window w = window_of(p, oy, ox);
        float acc;
        if (p.kind == POOL_MAX) {
            acc = -KILN_INFINITY;
            for (int yy = w.y0; yy < w.y1; ++yy)
                for (int xx = w.x0; xx < w.x1; ++xx) {
                    float v = image[((u64)yy * p.in_w + xx) * c_n + c];
                    acc = v > acc ? v : acc;
                }
        } else {
            acc = 0.0f;
            for (int yy = w.y0; yy < w.y1; ++yy)
                for (int xx = w.x0; xx < w.x1; ++xx) acc += image[((u64)yy * p.in_w + xx) * c_n + c];
            acc = acc * inv_count(w);
        }
        y[i] = acc;
    }
}

// The output rows (or columns) whose windows cover input row `v`: [lo, hi].
__device__ __forceinline__ void covering(int v, int pad, int size, int stride, int out, int* lo,
                                         int* hi) {
    int a = v + pad - size + 1;
    *lo = a <= 0 ? 0 : (a + stride - 1) / stride;
    *hi = min((v + pad) / stride, out - 1);
}

extern "C" __global__ void pool2d_bwd_f32(
    Pool2dParams p, const float* x, const float* y, const float* dy, float* dx) {
    u64 c_n = p.channels;
    u64 total = (u64)p.batch * p.in_h * p.in_w * c_n;
    KILN_FOR(i, total) {
        u32 c = (u32)(i % c_n);
        u64 cell = i / c_n;
        int ix = (int)(cell % p.in_w);
        int iy = (int)((cell / p.in_w) % p.in_h);
        u64 n = cell / ((u64)p.in_w * p.in_h);
        const float* image = x + n * p.in_h * p.in_w * c_n;
        u64 out_base = n * p.out_h * p.out_w;
        float v = x[i];
        int oy0, oy1, ox0, ox1;
        covering(iy, p.pad_top, p.size_h, p.stride_h, p.out_h, &oy0, &oy1);
        covering(ix, p.pad_left, p.size_w, p.stride_w, p.out_w, &ox0, &ox1);
        float d = 0.0f;
        for (int oy = oy0; oy <= oy1; ++oy) {
            for (int ox = ox0; ox <= ox1; ++ox) {
                u64 at = (out_base + (u64)oy * p.out_w + ox) * c_n + c;
                float g = dy[at];
                Window w = window_of(p, oy, ox);
                if (p.kind == POOL_MAX) {
                    // This cell takes the gradient if it is the window's first cell
                    // equal to the output; every other cell adds 0 * g, as on the CPU.
                    float best = y[at];
                    float hit = 0.0f;
                    if (v == best) {
                        hit = 1.0f;
                        for (int yy = w.y0; yy <= iy && hit != 0.0f; ++yy) {
                            int x_end = yy < iy ? w.x1 : ix;
                            for (int xx = w.x0; xx < x_end; ++xx) {
                                if (image[((u64)yy * p.in_w + xx) * c_n + c] == best) {
                                    hit = 0.0f;
                                    break;
                                }
                            }
                        }
                    }
                    d += hit * g;
                } else {
                    d += g * inv_count(w);
                }
            }
        }
        dx[i] = d;
    }
}
