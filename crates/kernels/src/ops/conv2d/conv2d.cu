// 2-D convolution on NHWC batches as implicit GEMMs on the tiled SGEMM core: the
// patch matrix (im2col) is never stored; its values are read from the image while
// the tiles load. With P = kh * kw * c_in and R = n * oh * ow output pixels:
//   forward:       y[R x c_out]  = act(patches[R x P] * w[P x c_out] + bias)
//   weight grad:   dw[P x c_out] += patches^T * dy, K (= R) split over blockIdx.z
//   input grad:    dx[(n, y, x) x c_in] = gather of dy over the windows covering
//                  (y, x) times w, K = kh * kw * c_out

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
    u32 activation;
    float negative_slope;
};

// Patch value (r, q): output pixel r = (n, oy, ox), patch index q = (ky, kx, c).
__device__ __forceinline__ float patch_at(const Conv2dParams& p, const float* x, u32 r, u32 q) {
    u32 c = q % p.in_c;
    u32 kk = q / p.in_c;
    u32 kx = kk % p.kernel_w, ky = kk / p.kernel_w;
    u32 ox = r % p.out_w;
    u32 rest = r / p.out_w;
    u32 oy = rest % p.out_h, n = rest / p.out_h;
    int yy = (int)(oy * p.stride_h + ky) - (int)p.pad_top;
    int xx = (int)(ox * p.stride_w + kx) - (int)p.pad_left;
    if (yy < 0 || yy >= (int)p.in_h || xx < 0 || xx >= (int)p.in_w) return 0.0f;
    return x[(((u64)n * p.in_h + yy) * p.in_w + xx) * p.in_c + c];
}

extern "C" __global__ void conv2d_fwd_f32(Conv2dParams p, const float* x, const float* w,
                                          const float* bias, float* y) {
    u32 rows = p.batch * p.out_h * p.out_w;
    u32 patch = p.kernel_h * p.kernel_w * p.in_c;
    u32 oc = p.out_c;
    auto load_a = [=](u32 r, u32 q) { return patch_at(p, x, r, q); };
    auto load_b = [=](u32 q, u32 j) { return w[(u64)q * oc + j]; };
    auto store = [=](u32 r, u32 j, float v) {
        y[(u64)r * oc + j] = kiln_activate(p.activation, p.negative_slope, v + bias[j]);
    };
    gemm_block(rows, oc, 0, patch, true, false, load_a, load_b, store);
}

// dw += patches^T * dy; block z sums pixels [z * chunk, (z + 1) * chunk).
extern "C" __global__ void conv2d_weight_bwd_f32(Conv2dParams p, const float* x, const float* dy,
                                                 float* dw, u32 chunk) {
    u32 rows = p.batch * p.out_h * p.out_w;
    u32 patch = p.kernel_h * p.kernel_w * p.in_c;
    u32 oc = p.out_c;
    u32 k_begin = blockIdx.z * chunk;
    u32 k_end = min(k_begin + chunk, rows);
    auto load_a = [=](u32 q, u32 r) { return patch_at(p, x, r, q); };
    auto load_b = [=](u32 r, u32 j) { return dy[(u64)r * oc + j]; };
    auto store = [=](u32 q, u32 j, float v) { atomicAdd(&dw[(u64)q * oc + j], v); };
    gemm_block(patch, oc, k_begin, k_end, false, false, load_a, load_b, store);
}

// dx[(n, y, x), c] = sum over (ky, kx, o) of dy[n, oy, ox, o] * w[ky, kx, c, o], where
// (oy, ox) is the output pixel whose window puts (ky, kx) on (y, x), if any.
extern "C" __global__ void conv2d_input_bwd_f32(Conv2dParams p, const float* dy, const float* w,
                                                float* dx) {
    u32 rows = p.batch * p.in_h * p.in_w;
    u32 inner = p.kernel_h * p.kernel_w * p.out_c;
    u32 oc = p.out_c, ic = p.in_c;
    auto load_a = [=](u32 i, u32 q) {
        u32 o = q % oc;
        u32 kk = q / oc;
        u32 kx = kk % p.kernel_w, ky = kk / p.kernel_w;
        u32 xx = i % p.in_w;
        u32 rest = i / p.in_w;
        u32 yy = rest % p.in_h, n = rest / p.in_h;
        int ty = (int)(yy + p.pad_top) - (int)ky;
        int tx = (int)(xx + p.pad_left) - (int)kx;
        if (ty < 0 || tx < 0 || ty % (int)p.stride_h != 0 || tx % (int)p.stride_w != 0) {
            return 0.0f;
        }
        u32 oy = (u32)ty / p.stride_h, ox = (u32)tx / p.stride_w;
        if (oy >= p.out_h || ox >= p.out_w) return 0.0f;
        return dy[(((u64)n * p.out_h + oy) * p.out_w + ox) * oc + o];
    };
    auto load_b = [=](u32 q, u32 c) {
        u32 o = q % oc;
        u32 kk = q / oc;
        return w[((u64)kk * ic + c) * oc + o];
    };
    auto store = [=](u32 i, u32 c, float v) { dx[(u64)i * ic + c] = v; };
    gemm_block(rows, ic, 0, inner, true, true, load_a, load_b, store);
}
