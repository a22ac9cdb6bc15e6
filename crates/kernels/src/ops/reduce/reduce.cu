// Sum of squares in double precision: each block reduces a grid-stride share of the
// input to one partial, which the host adds up. And the check for non-finite values,
// which reports the first one through the status words without the host waiting.

// partials[block] = sum over the block's share of x[i]^2. NaN and infinities carry
// through to the total.
extern "C" __global__ void sum_squares_fwd_f32(const float* x, u64 n, double* partials) {
    __shared__ double scratch[32];
    double s = 0.0;
    KILN_FOR(i, n) {
        double v = (double)x[i];
        s += v * v;
    }
    s = kiln_block_sum(s, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// The first non-finite value of up to CHECK_GROUP buffers (one buffer is a group of
// one), into the non-finite status word: buffer blockIdx.y, reported as if they were
// one after another (`offset` is where each starts). Matches `FiniteGroup` in
// cuda.rs.
#define CHECK_GROUP 16
struct FiniteGroup {
    u32 count;
    u64 len[CHECK_GROUP];
    u64 offset[CHECK_GROUP];
    const float* x[CHECK_GROUP];
};

extern "C" __global__ void check_finite_group_fwd_f32(FiniteGroup g, u64* status) {
    if (blockIdx.y >= g.count) return;
    u32 t = blockIdx.y;
    const float* x = g.x[t];
    KILN_FOR(i, g.len[t]) {
        float v = x[i];
        if (!isfinite(v)) kiln_report(status, STATUS_NON_FINITE, g.offset[t] + i, v);
    }
}
