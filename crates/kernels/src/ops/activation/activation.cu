// Activations: element-wise kernels over `rows * cols` values, and softmax with one
// block a row.

struct ActivationParams {
    u32 rows;
    u32 cols;
    u32 kind;
    float negative_slope;
};

// f'(x) given x and y = f(x), as the CPU backend's `derivative`.
__device__ __forceinline__ float derivative(u32 kind, float slope, float x, float y) {
    switch (kind) {
        case ACT_RELU: return y > 0.0f ? 1.0f : 0.0f;
        case ACT_LEAKY_RELU: return (y > 0.0f || (y == 0.0f && x > 0.0f)) ? 1.0f : slope;
        case ACT_SIGMOID: return y * (1.0f - y);
        case ACT_TANH: return 1.0f - y * y;
        case ACT_GELU: {
            float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
            return cdf + x * 0.3989423f * expf(-0.5f * x * x);
        }
        default: return 1.0f;
    }
}

// y = f(x) for the element-wise kinds; `x` and `y` may be the same memory.
extern "C" __global__ void activation_fwd_f32(ActivationParams p, const float* x, float* y) {
    u64 n = (u64)p.rows * p.cols;
    KILN_FOR(i, n) { y[i] = kiln_activate(p.kind, p.negative_slope, x[i]); }
}

// g *= f'(x) for the element-wise kinds.
extern "C" __global__ void activation_bwd_f32(
    ActivationParams p, const float* x, const float* y, float* g) {
    u64 n = (u64)p.rows * p.cols;
    if (p.kind == ACT_RELU) {
        KILN_FOR(i, n) { g[i] = y[i] > 0.0f ? g[i] : 0.0f; }
        return;
    }
    KILN_FOR(i, n) { g[i] = g[i] * derivative(p.kind, p.negative_slope, x[i], y[i]); }
}

// y = softmax(x) over each row, one block a row; `x` and `y` may be the same memory.
extern "C" __global__ void softmax_fwd_f32(ActivationParams p, const float* x, float* y) {
    __shared__ float scratch[32];
    for (u32 r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const float* xr = x + (u64)r * p.cols;
        float* yr = y + (u64)r * p.cols;
        float m = -KILN_INFINITY;
        for (u32 c = threadIdx.x; c < p.cols; c += blockDim.x) m = fmaxf(m, xr[c]);
        m = kiln_block_max(m, scratch);
        float s = 0.0f;
        for (u32 c = threadIdx.x; c < p.cols; c += blockDim.x) {
            float e = expf(xr[c] - m);
            yr[c] = e;
            s += e;
        }
        s = kiln_block_sum(s, scratch);
        float inv = 1.0f / s;
        for (u32 c = threadIdx.x; c < p.cols; c += blockDim.x) yr[c] = yr[c] * inv;
    }
}

// g = y * (g - dot(g, y)) over each row, one block a row.
extern "C" __global__ void softmax_bwd_f32(ActivationParams p, const float* y, float* g) {
    __shared__ float scratch[32];
    for (u32 r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const float* yr = y + (u64)r * p.cols;
        float* gr = g + (u64)r * p.cols;
        float d = 0.0f;
        for (u32 c = threadIdx.x; c < p.cols; c += blockDim.x) d += gr[c] * yr[c];
        d = kiln_block_sum(d, scratch);
        for (u32 c = threadIdx.x; c < p.cols; c += blockDim.x) gr[c] = yr[c] * (gr[c] - d);
    }
}
