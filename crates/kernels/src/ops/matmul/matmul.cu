// The matrix product c = op(a) * op(b) (or c += ...) on the SGEMM core, one kernel a
// tile (matmul_fwd_f32_<BM>x<BN>), each with the core compiled for the four layouts.
// A product of few tiles can split K along the grid's z: block z sums k in
// [z * chunk, (z + 1) * chunk) and adds its part to c atomically, so c must hold the
// sum to add to (zeros for c = ...).

struct MatmulParams {
    u32 m;
    u32 n;
    u32 k;
    bool trans_a;
    bool trans_b;
    bool accumulate;
};

template <u32 BM, u32 BN, u32 TM, u32 TN, bool TA, bool TB>
__device__ __forceinline__ void matmul_tile(GemmShared<BM, BN>& smem, const MatmulParams& p,
                                            const float* a, const float* b, float* c,
                                            u32 chunk) {
    u32 n = p.n;
    bool accumulate = p.accumulate, split = gridDim.z > 1;
    auto store = [=](u32 i, u32 j, float v) {
        u64 at = (u64)i * n + j;
        if (split) atomicAdd(&c[at], v);
        else c[at] = accumulate ? c[at] + v : v;
    };
    u32 k_begin = blockIdx.z * chunk, k_end = min(k_begin + chunk, p.k);
    gemm_tile<BM, BN, TM, TN, !TA, TB>(smem, p.m, n, k_begin, k_end, GemmA<TA>{a, p.m, p.k},
                                       GemmB<TB>{b, p.k, n}, store);
}

#define MATMUL_KERNEL(BM, BN, TM, TN, BLOCKS)                                                 \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS, BLOCKS)                        \
        matmul_fwd_f32_##BM##x##BN(MatmulParams p, const float* a, const float* b, float* c,  \
                                   u32 chunk) {                                               \
        __shared__ __align__(16) GemmShared<BM, BN> smem;                                     \
        if (p.trans_a) {                                                                      \
            if (p.trans_b) matmul_tile<BM, BN, TM, TN, true, true>(smem, p, a, b, c, chunk);  \
            else matmul_tile<BM, BN, TM, TN, true, false>(smem, p, a, b, c, chunk);           \
        } else {                                                                              \
            if (p.trans_b) matmul_tile<BM, BN, TM, TN, false, true>(smem, p, a, b, c, chunk); \
            else matmul_tile<BM, BN, TM, TN, false, false>(smem, p, a, b, c, chunk);          \
        }                                                                                     \
    }
GEMM_TILES(MATMUL_KERNEL)
