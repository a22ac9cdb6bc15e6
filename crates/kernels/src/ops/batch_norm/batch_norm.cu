// Batch normalisation over the channels of a rows x channels batch (channels last and
// contiguous). Per-channel sums over rows run in two steps, with no atomics, so that
// they come out the same on every run: each block of BN_ROWS rows of threads by 32
// lanes sums a band of rows for 32 channels into the workspace (in double), then one
// block a 32 channels adds the bands in order and finishes the channel. The element-wise passes
// run one channel a thread: the grid's threads are a multiple of the channels.
//
// The workspace: the backward's per-channel coefficients (3 * channels floats, in a
// slot of 4 * channels), then the partial sums, band b's at
// [2 * b * channels, 2 * (b + 1) * channels) as doubles (`bn_partials`).

struct BatchNormParams {
    u32 rows;
    u32 channels;
    float epsilon;
    float momentum;
    bool unbiased;
    u32 activation;
    float negative_slope;
};

// Rows of threads a block of the sums: a block is 32 lanes by BN_ROWS rows.
#define BN_ROWS 8

__device__ __forceinline__ double* bn_partials(float* ws, u32 channels) {
    return (double*)(ws + 4ull * channels);
}

// Rows of the batch a row of threads reads at once: one for 32 channels or more (the
// lanes take 32 channels of it), else as many whole rows as 32 lanes hold, so that a
// warp still reads 32 contiguous values.
__device__ __forceinline__ u32 bn_rows_per_warp(u32 channels) {
    return channels < 32 ? 32u / channels : 1u;
}

// Two sums per channel over `rows` rows: the threads of row y of block (bx, by) take
// rows by * BN_ROWS + y of the grid's rows of threads, a stride of gridDim.y * BN_ROWS
// apart, each `bn_rows_per_warp` rows of the batch; lane x takes channel bx * 32 + x
// (or, with fewer than 32 channels, channel x % channels of the (x / channels)-th of
// them). `term(r, c, s1, s2)` adds row r's terms. The block's threads of each channel
// are then added in order. Returns whether this thread holds the block's sums for its
// channel, blockIdx.x * 32 + threadIdx.x (in the first row of threads); every thread
// must call it.
template <class Term>
__device__ __forceinline__ bool bn_sums(u32 channels, u32 rows, Term term, double& s1,
                                        double& s2) {
    __shared__ double part[2][BN_ROWS][32];
    u32 x = threadIdx.x, y = threadIdx.y, g = bn_rows_per_warp(channels);
    u32 c = g > 1 ? x % channels : blockIdx.x * 32u + x, sub = g > 1 ? x / channels : 0u;
    s1 = 0.0;
    s2 = 0.0;
    if (c < channels && sub < g) {
        for (u64 r = ((u64)blockIdx.y * BN_ROWS + y) * g + sub; r < rows;
             r += (u64)gridDim.y * BN_ROWS * g) {
            term(r, c, s1, s2);
        }
    }
    part[0][y][x] = s1;
    part[1][y][x] = s2;
    __syncthreads();
    if (y != 0 || sub != 0 || c >= channels) return false;
    for (u32 k = 0; k < BN_ROWS; ++k) {
        for (u32 j = k == 0 ? 1u : 0u; j < g; ++j) {
            s1 += part[0][k][j * channels + x];
            s2 += part[1][k][j * channels + x];
        }
    }
    return true;
}

// The `bands` partial sums in the workspace added in order, one block a 32 channels
// (`bn_sums` over the bands).
__device__ __forceinline__ bool bn_totals(u32 channels, u32 bands, float* ws, double& s1,
                                          double& s2) {
    const double* partials = bn_partials(ws, channels);
    auto term = [=](u64 b, u32 c, double& a, double& q) {
        a += partials[b * 2 * channels + c];
        q += partials[b * 2 * channels + channels + c];
    };
    return bn_sums(channels, bands, term, s1, s2);
}

// Band blockIdx.y's sums of (x - x[0, c]) and its square: less the channel's first
// value, the variance comes from sums of the size of the spread, not of the mean.
extern "C" __global__ void batch_norm_partials_fwd_f32(BatchNormParams p, const float* x,
                                                       float* ws) {
    u32 C = p.channels;
    double s1, s2;
    auto term = [=](u64 r, u32 c, double& a, double& b) {
        double d = (double)x[r * C + c] - (double)x[c];
        a += d;
        b += d * d;
    };
    if (!bn_sums(C, p.rows, term, s1, s2)) return;
    double* partials = bn_partials(ws, C) + (u64)blockIdx.y * 2 * C;
    u32 c = blockIdx.x * 32u + threadIdx.x;
    partials[c] = s1;
    partials[C + c] = s2;
}

// The batch's statistics, one block a 32 channels: the `bands` partial sums added in
// order give the mean and biased variance; the mean and invstd go into `saved`, and
// the running statistics move towards the mean and the (unbiased, if asked) variance.
extern "C" __global__ void batch_norm_stats_fwd_f32(BatchNormParams p, u32 bands, const float* x,
                                                    float* running_mean, float* running_var,
                                                    float* saved, float* ws) {
    u32 C = p.channels;
    double s1, s2;
    if (!bn_totals(C, bands, ws, s1, s2)) return;
    u32 c = blockIdx.x * 32u + threadIdx.x;
    double eps = (double)p.epsilon, n = (double)p.rows;
    double shift = s1 / n;
    double var = s2 / n - shift * shift;
    // Rounding can leave a constant channel's variance just below zero; NaN stays NaN.
    if (var < 0.0) var = 0.0;
    double mean = (double)x[c] + shift;
    saved[c] = (float)mean;
    saved[C + c] = (float)(1.0 / sqrt(var + eps));
    double m = (double)p.momentum;
    double correction = p.unbiased ? n / (n - 1.0) : 1.0;
    running_mean[c] = (float)(m * (double)running_mean[c] + (1.0 - m) * mean);
    running_var[c] = (float)(m * (double)running_var[c] + (1.0 - m) * var * correction);
}

// The inference statistics: `saved` takes the running means and
// 1 / sqrt(running variance + epsilon).
extern "C" __global__ void batch_norm_running_fwd_f32(BatchNormParams p,
                                                      const float* running_mean,
                                                      const float* running_var, float* saved) {
    u32 C = p.channels;
    KILN_FOR(c, C) {
        saved[c] = running_mean[c];
        saved[C + c] = (float)(1.0 / sqrt((double)running_var[c] + (double)p.epsilon));
    }
}

// y = act((x - mean) * invstd * gamma + beta), `saved` holding the means, then the
// invstds. The grid's threads must be a multiple of the channels.
extern "C" __global__ void batch_norm_fwd_f32(BatchNormParams p, const float* x,
                                              const float* gamma, const float* beta,
                                              const float* saved, float* y) {
    u64 n = (u64)p.rows * p.channels;
    u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    u32 c = (u32)(t % p.channels);
    float m = saved[c], s = saved[p.channels + c], g = gamma[c], b = beta[c];
    for (u64 i = t; i < n; i += (u64)blockDim.x * gridDim.x) {
        y[i] = kiln_activate(p.activation, p.negative_slope, (x[i] - m) * s * g + b);
    }
}

// Band blockIdx.y's sums of dy and of dy * (x - mean), which is sum(dy * xhat) / invstd.
extern "C" __global__ void batch_norm_partials_bwd_f32(BatchNormParams p, const float* x,
                                                       const float* dy, const float* saved,
                                                       float* ws) {
    u32 C = p.channels;
    double s1, s2;
    auto term = [=](u64 r, u32 c, double& a, double& b) {
        u64 i = r * C + c;
        double g = (double)dy[i];
        a += g;
        b += g * (double)(x[i] - saved[c]);
    };
    if (!bn_sums(C, p.rows, term, s1, s2)) return;
    double* partials = bn_partials(ws, C) + (u64)blockIdx.y * 2 * C;
    u32 c = blockIdx.x * 32u + threadIdx.x;
    partials[c] = s1;
    partials[C + c] = s2;
}

// The parameter gradients, one block a 32 channels: the `bands` partial sums added in
// order, dgamma += sum(dy * xhat) and dbeta += sum(dy); and the input gradient's
// coefficients into the workspace's first 3 * channels floats: dx = dy * k_dy + k_c +
// (x - mean) * k_x after a training forward (`training`), dy * k_dy after an inference
// one.
extern "C" __global__ void batch_norm_grads_bwd_f32(BatchNormParams p, u32 training, u32 bands,
                                                    const float* saved, const float* gamma,
                                                    float* dgamma, float* dbeta, float* ws) {
    u32 C = p.channels;
    double s1, s2;
    if (!bn_totals(C, bands, ws, s1, s2)) return;
    u32 c = blockIdx.x * 32u + threadIdx.x;
    double invstd = (double)saved[C + c], n = (double)p.rows;
    double sum_dy = s1, sum_dy_xhat = s2 * invstd;
    dgamma[c] = (float)((double)dgamma[c] + sum_dy_xhat);
    dbeta[c] = (float)((double)dbeta[c] + sum_dy);
    double a = (double)gamma[c] * invstd;
    ws[c] = (float)a;
    ws[C + c] = training ? (float)(-a * invstd * sum_dy_xhat / n) : 0.0f;
    ws[2 * C + c] = training ? (float)(-a * sum_dy / n) : 0.0f;
}

// dx = dy * k_dy + k_c + (x - mean) * k_x (`training`) or dy * k_dy, written or added
// (`accumulate`), with the coefficients of `batch_norm_grads_bwd_f32` in `ws`. The grid's
// threads must be a multiple of the channels.
extern "C" __global__ void batch_norm_bwd_f32(BatchNormParams p, u32 training, u32 accumulate,
                                              const float* x, const float* dy,
                                              const float* saved, const float* ws, float* dx) {
    u64 n = (u64)p.rows * p.channels;
    u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    u32 C = p.channels, c = (u32)(t % C);
    float m = saved[c], a = ws[c], kx = ws[C + c], kc = ws[2 * C + c];
    for (u64 i = t; i < n; i += (u64)blockDim.x * gridDim.x) {
        float v = training ? (dy[i] * a + kc) + (x[i] - m) * kx : dy[i] * a;
        dx[i] = accumulate ? dx[i] + v : v;
    }
}
