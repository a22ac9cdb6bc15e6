// Per-column bias: the forward adds it and applies the epilogue activation; the
// backward sums the output gradient over rows.

struct BiasParams {
    u32 rows;
    u32 cols;
    u32 activation;
    float negative_slope;
};

// y[r, c] = act(y[r, c] + bias[c]).
extern "C" __global__ void bias_fwd_f32(BiasParams p, const float* bias, float* y) {
    u64 n = (u64)p.rows * p.cols;
    KILN_FOR(i, n) {
        float v = y[i] + bias[i % p.cols];
        y[i] = kiln_activate(p.activation, p.negative_slope, v);
    }
}

// Rows of threads a block: a block is 32 columns by BIAS_ROWS rows.
#define BIAS_ROWS 8

// dbias[c] += sum_r dy[r, c]: each block sums a band of rows for 32 columns, then adds
// its partial with one atomic a column (so the order of the additions varies).
extern "C" __global__ void bias_bwd_f32(BiasParams p, const float* dy, float* dbias) {
    __shared__ float part[BIAS_ROWS][33];
    u32 c = blockIdx.x * 32u + threadIdx.x;
    float s = 0.0f;
    if (c < p.cols) {
        for (u32 r = blockIdx.y * BIAS_ROWS + threadIdx.y; r < p.rows;
             r += gridDim.y * BIAS_ROWS) {
            s += dy[(u64)r * p.cols + c];
        }
    }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < p.cols) {
        for (u32 k = 1; k < BIAS_ROWS; ++k) s += part[k][threadIdx.x];
        atomicAdd(&dbias[c], s);
    }
}
