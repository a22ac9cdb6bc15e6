// The matrix product c = op(a) * op(b) (or c += ...) on the SGEMM core, one kernel a
// tile: matmul_fwd_f32_<BM>x<BN>.

struct MatmulParams {
    u32 m;
    u32 n;
    u32 k;
    bool trans_a;
    bool trans_b;
    bool accumulate;
};

#define MATMUL_KERNEL(BM, BN, TM, TN, BLOCKS)                                                      \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS, BLOCKS)                          \
        matmul_fwd_f32_##BM##x##BN(MatmulParams p, const float* a, const float* b,           \
                                   float* c) {                                               \
        u32 n = p.n;                                                                         \
        bool accumulate = p.accumulate;                                                      \
        auto store = [=](u32 i, u32 j, float v) {                                            \
            u64 at = (u64)i * n + j;                                                         \
            c[at] = accumulate ? c[at] + v : v;                                              \
        };                                                                                   \
        gemm_tile<BM, BN, TM, TN>(p.m, n, 0, p.k, !p.trans_a, p.trans_b,                     \
                                  GemmA{a, p.m, p.k, p.trans_a}, GemmB{b, p.k, n, p.trans_b}, \
                                  store);                                                    \
    }
GEMM_TILES(MATMUL_KERNEL)
