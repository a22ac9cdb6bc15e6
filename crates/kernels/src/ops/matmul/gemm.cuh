// A tiled SGEMM core shared by the matrix product and the convolutions: a block of
// 256 threads computes a 64 x 64 tile of C = A * B, each thread a 4 x 4 grid of it,
// stepping through K in slices of 16 staged in shared memory. A and B are functors
// `a(i, q)` and `b(q, j)` called only inside the matrices, so a convolution can read
// its patches straight from the image (an implicit im2col) instead of from a matrix.

#define GEMM_BM 64
#define GEMM_BN 64
#define GEMM_BK 16
#define GEMM_THREADS 256

// Accumulates rows [blockIdx.x * 64, +64) and columns [blockIdx.y * 64, +64) of
// A[M x K] * B[K x N] over q in [k_begin, k_end), then calls store(i, j, value) for
// each element of the tile inside C. `a_k_fastest` says that A's consecutive q are
// consecutive in memory (else consecutive i are), and likewise `b_k_fastest` for B:
// the tile loads walk memory in that order so that a warp's reads coalesce.
template <class A, class B, class Store>
__device__ __forceinline__ void gemm_block(u32 M, u32 N, u32 k_begin, u32 k_end,
                                           bool a_k_fastest, bool b_k_fastest, const A& a,
                                           const B& b, const Store& store) {
    __shared__ float as[GEMM_BK][GEMM_BM + 4];
    __shared__ float bs[GEMM_BK][GEMM_BN + 4];
    u32 tid = threadIdx.x;
    u32 tx = tid % 16u, ty = tid / 16u;
    // Row tiles along x, whose limit (2^31 - 1) is far above y's (65535): the long
    // side of a convolution's product is its rows, one a pixel of the batch.
    u32 row0 = blockIdx.x * GEMM_BM, col0 = blockIdx.y * GEMM_BN;
    float acc[4][4];
    for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) acc[r][c] = 0.0f;
    for (u32 k0 = k_begin; k0 < k_end; k0 += GEMM_BK) {
        for (u32 e = tid; e < GEMM_BM * GEMM_BK; e += GEMM_THREADS) {
            u32 i = a_k_fastest ? e / GEMM_BK : e % GEMM_BM;
            u32 q = a_k_fastest ? e % GEMM_BK : e / GEMM_BM;
            u32 gi = row0 + i, gq = k0 + q;
            as[q][i] = (gi < M && gq < k_end) ? a(gi, gq) : 0.0f;
        }
        for (u32 e = tid; e < GEMM_BK * GEMM_BN; e += GEMM_THREADS) {
            u32 j = b_k_fastest ? e / GEMM_BK : e % GEMM_BN;
            u32 q = b_k_fastest ? e % GEMM_BK : e / GEMM_BN;
            u32 gj = col0 + j, gq = k0 + q;
            bs[q][j] = (gj < N && gq < k_end) ? b(gq, gj) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (u32 q = 0; q < GEMM_BK; ++q) {
            float ra[4], rb[4];
#pragma unroll
            for (int r = 0; r < 4; ++r) ra[r] = as[q][ty + 16u * r];
#pragma unroll
            for (int c = 0; c < 4; ++c) rb[c] = bs[q][tx + 16u * c];
#pragma unroll
            for (int r = 0; r < 4; ++r)
#pragma unroll
                for (int c = 0; c < 4; ++c) acc[r][c] += ra[r] * rb[c];
        }
        __syncthreads();
    }
    for (int r = 0; r < 4; ++r) {
        u32 i = row0 + ty + 16u * r;
        if (i >= M) continue;
        for (int c = 0; c < 4; ++c) {
            u32 j = col0 + tx + 16u * c;
            if (j < N) store(i, j, acc[r][c]);
        }
    }
}
