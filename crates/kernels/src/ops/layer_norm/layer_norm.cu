// Layer normalisation over each row's `cols` values. The forward pass keeps each
// row's mean and reciprocal standard deviation (`stats`: means, then rstds).

struct LayerNormParams {
    u32 rows;
    u32 cols;
    float epsilon;
    u32 accumulate;
};

// One block a row: the mean, then the variance about it (two passes, as the CPU).
extern "C" __global__ void layer_norm_fwd_f32(LayerNormParams p, const float* x,
                                              const float* gamma, const float* beta,
                                              float* y, float* stats) {
    __shared__ float scratch[32];
    for (u32 r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const float* xr = x + (u64)r * p.cols;
        float* yr = y + (u64)r * p.cols;
        float s = 0.0f;
        for (u32 c = threadIdx.x; c < p.cols; c += blockDim.x) s += xr[c];
        float mean = kiln_block_sum(s, scratch) / (float)p.cols;
        float v = 0.0f;
        for (u32 c = threadIdx.x; c < p.cols; c += blockDim.x) {
            float d = xr[c] - mean;
            v += d * d;
        }
        float var = kiln_block_sum(v, scratch) / (float)p.cols;
        float rstd = rsqrtf(var + p.epsilon);
        for (u32 c = threadIdx.x; c < p.cols; c += blockDim.x) {
            yr[c] = (xr[c] - mean) * rstd * gamma[c] + beta[c];
        }
        if (threadIdx.x == 0) {
            stats[r] = mean;
            stats[p.rows + r] = rstd;
        }
    }
}

// The input's gradient, one block a row:
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma.
extern "C" __global__ void layer_norm_bwd_f32(LayerNormParams p, const float* x,
                                              const float* gamma, const float* stats,
                                              const float* dy, float* dx) {
    __shared__ float scratch[32];
    for (u32 r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const float* xr = x + (u64)r * p.cols;
        const float* dyr = dy + (u64)r * p.cols;
        float* dxr = dx + (u64)r * p.cols;
        float mean = stats[r], rstd = stats[p.rows + r];
        float sg = 0.0f, sgx = 0.0f;
        for (u32 c = threadIdx.x; c < p.cols; c += blockDim.x) {
            float g = dyr[c] * gamma[c];
            sg += g;
            sgx += g * (xr[c] - mean) * rstd;
        }
        float mg = kiln_block_sum(sg, scratch) / (float)p.cols;
        float mgx = kiln_block_sum(sgx, scratch) / (float)p.cols;
        for (u32 c = threadIdx.x; c < p.cols; c += blockDim.x) {
            float xhat = (xr[c] - mean) * rstd;
            float v = rstd * (dyr[c] * gamma[c] - mg - xhat * mgx);
            dxr[c] = p.accumulate ? dxr[c] + v : v;
        }
    }
}

// The parameters' gradients, one thread a column walking down the rows:
// dgamma += sum dy * xhat, dbeta += sum dy.
extern "C" __global__ void layer_norm_params_bwd_f32(LayerNormParams p, const float* x,
                                                     const float* stats, const float* dy,
                                                     float* dgamma, float* dbeta) {
    KILN_FOR(c, p.cols) {
        float g = 0.0f, b = 0.0f;
        for (u32 r = 0; r < p.rows; r++) {
            u64 i = (u64)r * p.cols + c;
            float xhat = (x[i] - stats[r]) * stats[p.rows + r];
            g += dy[i] * xhat;
            b += dy[i];
        }
        dgamma[c] += g;
        dbeta[c] += b;
    }
}
