// The matrix product c = op(a) * op(b) (or c += ...) on the tiled SGEMM core.

struct MatmulParams {
    u32 m;
    u32 n;
    u32 k;
    bool trans_a;
    bool trans_b;
    bool accumulate;
};

extern "C" __global__ void matmul_fwd_f32(MatmulParams p, const float* a, const float* b,
                                          float* c) {
    u32 m = p.m, n = p.n, k = p.k;
    bool ta = p.trans_a, tb = p.trans_b, accumulate = p.accumulate;
    auto load_a = [=](u32 i, u32 q) { return ta ? a[(u64)q * m + i] : a[(u64)i * k + q]; };
    auto load_b = [=](u32 q, u32 j) { return tb ? b[(u64)j * k + q] : b[(u64)q * n + j]; };
    auto store = [=](u32 i, u32 j, float v) {
        u64 at = (u64)i * n + j;
        c[at] = accumulate ? c[at] + v : v;
    };
    gemm_block(m, n, 0, k, !ta, tb, load_a, load_b, store);
}
