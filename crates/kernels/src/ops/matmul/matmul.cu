// The matrix product c = op(a) * op(b) (or c += ...) on the SGEMM core, one kernel a
// tile (matmul_fwd_f32_<BM>x<BN>), each with the core compiled for the four layouts.

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
                                            const float* a, const float* b, float* c) {
    u32 n = p.n;
    bool accumulate = p.accumulate;
    auto store = [=](u32 i, u32 j, float v) {
        u64 at = (u64)i * n + j;
        c[at] = accumulate ? c[at] + v : v;
    };
    gemm_tile<BM, BN, TM, TN, !TA, TB>(smem, p.m, n, 0, p.k, GemmA<TA>{a, p.m, p.k},
                                       GemmB<TB>{b, p.k, n}, store);
}

#define MATMUL_KERNEL(BM, BN, TM, TN, BLOCKS)                                                 \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS, BLOCKS)                        \
        matmul_fwd_f32_##BM##x##BN(MatmulParams p, const float* a, const float* b, float* c) { \
        __shared__ __align__(16) GemmShared<BM, BN> smem;                                     \
        if (p.trans_a) {                                                                      \
            if (p.trans_b) matmul_tile<BM, BN, TM, TN, true, true>(smem, p, a, b, c);         \
            else matmul_tile<BM, BN, TM, TN, true, false>(smem, p, a, b, c);                  \
        } else {                                                                              \
            if (p.trans_b) matmul_tile<BM, BN, TM, TN, false, true>(smem, p, a, b, c);        \
            else matmul_tile<BM, BN, TM, TN, false, false>(smem, p, a, b, c);                 \
        }                                                                                     \
    }
GEMM_TILES(MATMUL_KERNEL)
