// 2-D convolution on NHWC batches as implicit GEMMs on the SGEMM core, one kernel of
// each a tile (`<name>_<BM>x<BN>`): the patch matrix (im2col) is never stored; the
// loaders below read its values from the image while the slices load. With
// P = kh * kw * c_in and R = n * oh * ow output pixels:
//   forward:       y[R x c_out]  = act(patches[R x P] * w[P x c_out] + bias)
//   weight grad:   dw[P x c_out] += patches^T * dy, K (= R) split over blockIdx.z
//   input grad:    dx[(n, y, x) x c_in] = (or +=) gather of dy over the windows
//                  covering (y, x) times w, K = kh * kw * c_out

struct Conv2dParams {
    u32 batch;
    u32 in_h;
    u32 in_w;
    u32 in_c;
    u32 out_h;
    u32 out_w;
    u32 out_c;
    u32 kernel_h;
    u32 kernel_w;
    u32 stride_h;
    u32 stride_w;
    u32 pad_top;
    u32 pad_left;
    u32 dilation_h;  // rows between kernel rows' inputs (a 1-D layer's dilation)
    u32 activation;
    float negative_slope;
};

// A patch index q = (ky, kx, c) (or, for the input gradient, (ky, kx, o)), split once
// and then moved forward without dividing: `channels` is c's range.
struct Tap {
    u32 c;
    u32 kx;
    u32 ky;
};

__device__ __forceinline__ Tap tap_of(u32 q, u32 channels, u32 kernel_w) {
    u32 kk = q / channels;
    return Tap{q % channels, kk % kernel_w, kk / kernel_w};
}

__device__ __forceinline__ void tap_next(Tap& t, u32 step, u32 channels, u32 kernel_w) {
    t.c += step;
    while (t.c >= channels) {
        t.c -= channels;
        if (++t.kx == kernel_w) {
            t.kx = 0;
            ++t.ky;
        }
    }
}

// The patch matrix as A of the forward pass: row r an output pixel (n, oy, ox), column
// q a patch index. A row's context is where its window starts.
struct PatchRows {
    Conv2dParams p;
    const float* x;
    struct Window {
        u64 image;  // offset of image n
        int y0;     // window origin, padding included
        int x0;
    };
    __device__ __forceinline__ Window row(u32 r) const {
        u32 ox = r % p.out_w, rest = r / p.out_w;
        u32 oy = rest % p.out_h, n = rest / p.out_h;
        return Window{(u64)n * p.in_h * p.in_w * p.in_c, (int)(oy * p.stride_h) - (int)p.pad_top,
                      (int)(ox * p.stride_w) - (int)p.pad_left};
    }
    __device__ __forceinline__ Tap k(u32 q) const { return tap_of(q, p.in_c, p.kernel_w); }
    __device__ __forceinline__ void next(Tap& t, u32 step) const {
        tap_next(t, step, p.in_c, p.kernel_w);
    }
    __device__ __forceinline__ float at(const Window& w, const Tap& t) const {
        int yy = w.y0 + (int)(t.ky * p.dilation_h), xx = w.x0 + (int)t.kx;
        if (yy < 0 || yy >= (int)p.in_h || xx < 0 || xx >= (int)p.in_w) return 0.0f;
        return x[w.image + ((u64)yy * p.in_w + xx) * p.in_c + t.c];
    }
};

// The transposed patch matrix as A of the weight gradient: row q a patch index, column
// r an output pixel (n, oy, ox), which moves forward pixel by pixel along K.
struct PatchColumns {
    Conv2dParams p;
    const float* x;
    struct Pixel {
        u64 image;  // offset of image n
        u32 oy;
        u32 ox;
    };
    __device__ __forceinline__ Tap row(u32 q) const { return tap_of(q, p.in_c, p.kernel_w); }
    __device__ __forceinline__ Pixel k(u32 r) const {
        u32 ox = r % p.out_w, rest = r / p.out_w;
        return Pixel{(u64)(rest / p.out_h) * p.in_h * p.in_w * p.in_c, rest % p.out_h, ox};
    }
    __device__ __forceinline__ void next(Pixel& px, u32 step) const {
        px.ox += step;
        while (px.ox >= p.out_w) {
            px.ox -= p.out_w;
            if (++px.oy == p.out_h) {
                px.oy = 0;
                px.image += (u64)p.in_h * p.in_w * p.in_c;
            }
        }
    }
    __device__ __forceinline__ float at(const Tap& t, const Pixel& px) const {
        int yy = (int)(px.oy * p.stride_h + t.ky * p.dilation_h) - (int)p.pad_top;
        int xx = (int)(px.ox * p.stride_w + t.kx) - (int)p.pad_left;
        if (yy < 0 || yy >= (int)p.in_h || xx < 0 || xx >= (int)p.in_w) return 0.0f;
        return x[px.image + ((u64)yy * p.in_w + xx) * p.in_c + t.c];
    }
};

// The output gradient gathered over windows as A of the input gradient: row i an input
// pixel (n, y, x), column q = (ky, kx, o) the value dy[n, oy, ox, o] of the output
// pixel whose window puts tap (ky, kx) on (y, x), or 0 where there is none. With a
// dilation, tap ky lies ky * dilation_h rows below its window's origin.
struct GradientWindows {
    Conv2dParams p;
    const float* dy;
    struct Pixel {
        u64 image;  // offset of image n in dy
        int y;      // the pixel, padding included
        int x;
    };
    __device__ __forceinline__ Pixel row(u32 i) const {
        u32 xx = i % p.in_w, rest = i / p.in_w;
        u32 yy = rest % p.in_h, n = rest / p.in_h;
        return Pixel{(u64)n * p.out_h * p.out_w * p.out_c, (int)(yy + p.pad_top),
                     (int)(xx + p.pad_left)};
    }
    __device__ __forceinline__ Tap k(u32 q) const { return tap_of(q, p.out_c, p.kernel_w); }
    __device__ __forceinline__ void next(Tap& t, u32 step) const {
        tap_next(t, step, p.out_c, p.kernel_w);
    }
    __device__ __forceinline__ float at(const Pixel& px, const Tap& t) const {
        int ty = px.y - (int)(t.ky * p.dilation_h), tx = px.x - (int)t.kx;
        if (ty < 0 || tx < 0) return 0.0f;
        u32 oy = (u32)ty, ox = (u32)tx;
        if (p.stride_h != 1 || p.stride_w != 1) {
            if (oy % p.stride_h != 0 || ox % p.stride_w != 0) return 0.0f;
            oy /= p.stride_h;
            ox /= p.stride_w;
        }
        if (oy >= p.out_h || ox >= p.out_w) return 0.0f;
        return dy[px.image + ((u64)oy * p.out_w + ox) * p.out_c + t.c];
    }
};

// The kernel as B of the input gradient: row q = (ky, kx, o), column c an input
// channel, the value w[ky, kx, c, o]. A column's context is its channel.
struct KernelTaps {
    Conv2dParams p;
    const float* w;
    __device__ __forceinline__ u32 col(u32 c) const { return c; }
    __device__ __forceinline__ Tap k(u32 q) const { return tap_of(q, p.out_c, p.kernel_w); }
    __device__ __forceinline__ void next(Tap& t, u32 step) const {
        tap_next(t, step, p.out_c, p.kernel_w);
    }
    __device__ __forceinline__ float at(u32 c, const Tap& t) const {
        return w[(((u64)t.ky * p.kernel_w + t.kx) * p.in_c + c) * p.out_c + t.c];
    }
};

#define CONV2D_KERNELS(BM, BN, TM, TN, BLOCKS)                                                 \
    /* y = act(patches * w + bias); split along z (small batches), each block adds its */      \
    /* part of K into y (zeroed first), and the bias and activation come after. */             \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS, BLOCKS)                         \
        conv2d_fwd_f32_##BM##x##BN(Conv2dParams p, const float* x, const float* w,             \
                                   const float* bias, float* y, u32 chunk) {                   \
        __shared__ __align__(16) GemmShared<BM, BN> smem;                                      \
        u32 rows = p.batch * p.out_h * p.out_w, patch = p.kernel_h * p.kernel_w * p.in_c;      \
        u32 oc = p.out_c;                                                                      \
        u32 k_begin = blockIdx.z * chunk, k_end = min(k_begin + chunk, patch);                 \
        bool split = gridDim.z > 1;                                                            \
        auto store = [=](u32 r, u32 j, float v) {                                              \
            u64 at = (u64)r * oc + j;                                                          \
            if (split) atomicAdd(&y[at], v);                                                   \
            else y[at] = kiln_activate(p.activation, p.negative_slope, v + bias[j]);           \
        };                                                                                     \
        gemm_tile<BM, BN, TM, TN, true, false>(smem, rows, oc, k_begin, k_end, PatchRows{p, x},\
                                               GemmB<false>{w, patch, oc}, store);             \
    }                                                                                          \
    /* dw += patches^T * dy; block z sums pixels [z * chunk, (z + 1) * chunk). */              \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS, BLOCKS)                         \
        conv2d_weight_bwd_f32_##BM##x##BN(Conv2dParams p, const float* x, const float* dy,     \
                                          float* dw, u32 chunk) {                              \
        __shared__ __align__(16) GemmShared<BM, BN> smem;                                      \
        u32 rows = p.batch * p.out_h * p.out_w, patch = p.kernel_h * p.kernel_w * p.in_c;      \
        u32 oc = p.out_c;                                                                      \
        u32 k_begin = blockIdx.z * chunk, k_end = min(k_begin + chunk, rows);                  \
        auto store = [=](u32 q, u32 j, float v) { atomicAdd(&dw[(u64)q * oc + j], v); };      \
        gemm_tile<BM, BN, TM, TN, false, false>(smem, patch, oc, k_begin, k_end,               \
                                                PatchColumns{p, x}, GemmB<false>{dy, rows, oc}, \
                                                store);                                        \
    }                                                                                          \
    /* dx = dy * w^T (dx += with accumulate) over taps x filters; split along z as the */     \
    /* weight gradient is, each block adding its part of K into dx (zeroed first unless */     \
    /* it accumulates) when z has more than one slice. */                                      \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS, BLOCKS)                         \
        conv2d_input_bwd_f32_##BM##x##BN(Conv2dParams p, const float* dy, const float* w,      \
                                         float* dx, bool accumulate, u32 chunk) {              \
        __shared__ __align__(16) GemmShared<BM, BN> smem;                                      \
        u32 rows = p.batch * p.in_h * p.in_w, inner = p.kernel_h * p.kernel_w * p.out_c;       \
        u32 ic = p.in_c;                                                                       \
        u32 k_begin = blockIdx.z * chunk, k_end = min(k_begin + chunk, inner);                 \
        bool split = gridDim.z > 1;                                                            \
        auto store = [=](u32 i, u32 c, float v) {                                              \
            u64 at = (u64)i * ic + c;                                                          \
            if (split) atomicAdd(&dx[at], v);                                                  \
            else dx[at] = accumulate ? dx[at] + v : v;                                         \
        };                                                                                     \
        GradientWindows a{p, dy};                                                              \
        KernelTaps b{p, w};                                                                    \
        gemm_tile<BM, BN, TM, TN, true, true>(smem, rows, ic, k_begin, k_end, a, b, store);    \
    }
GEMM_TILES(CONV2D_KERNELS)
