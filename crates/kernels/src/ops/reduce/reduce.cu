// Sum of squares in double precision: each block reduces a grid-stride share of the
// input to one partial, which the host adds up.

__device__ double block_sum_f64(double v, double* scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    u32 warps = (blockDim.x + 31u) >> 5;
    v = threadIdx.x < warps ? scratch[threadIdx.x] : 0.0;
    if (warp == 0) {
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    }
    return v;
}

// partials[block] = sum over the block's share of x[i]^2. NaN and infinities carry
// through to the total.
extern "C" __global__ void sum_squares_fwd_f32(const float* x, u64 n, double* partials) {
    __shared__ double scratch[32];
    double s = 0.0;
    KILN_FOR(i, n) {
        double v = (double)x[i];
        s += v * v;
    }
    s = block_sum_f64(s, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}
