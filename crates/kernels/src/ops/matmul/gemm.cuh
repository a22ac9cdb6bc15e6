// The SGEMM core shared by the matrix product and the convolutions. A block of 256
// threads computes a BM x BN tile of C = A * B, each thread TM x TN values of it held
// in registers, stepping through K in slices of 8 that are staged in shared memory.
//
// - Double buffering: while the block multiplies one slice out of shared memory, each
//   thread's loads of the next slice are in flight into registers; they are stored
//   into the other buffer afterwards, so one barrier a slice suffices.
// - A thread's TM rows are TM / 4 runs of 4 spread BM / (TM / 4) apart (likewise its
//   columns), so that it reads them from shared memory as float4 and a warp's reads of
//   B fall on distinct banks. Rows of the staged slices are padded by 4 floats, which
//   keeps both store patterns below free of bank conflicts.
// - A and B are loaders rather than matrices, so that a convolution reads its patches
//   straight from the image (an implicit im2col): `a.row(i)` gives a context for row i
//   of A, computed once per thread since a thread loads the same rows of A at every
//   slice, and `a.at(ctx, q)` the value at (i, q); `b.col(j)` and `b.at(ctx, q)` the
//   same for column j of B. They are called only inside the matrices.
// - `a_k_fastest` says that A's consecutive q are consecutive in memory (else its
//   consecutive i are), likewise `b_k_fastest` for B: a warp's loads walk memory in
//   that order so that they coalesce.
//
// Rows of C go along blockIdx.x, whose limit (2^31 - 1) is far above y's (65535): the
// long side of a convolution's product is its rows, one a pixel of the batch. The
// tiles compiled (GEMM_TILE below) match `Tile` in matmul/cuda.rs.

#define GEMM_BK 8u
#define GEMM_THREADS 256u

template <u32 BM, u32 BN, u32 TM, u32 TN, class A, class B, class Store>
__device__ __forceinline__ void gemm_tile(u32 M, u32 N, u32 k_begin, u32 k_end,
                                          bool a_k_fastest, bool b_k_fastest, const A& a,
                                          const B& b, const Store& store) {
    constexpr u32 TX = BN / TN, TY = BM / TM;
    static_assert(TX * TY == GEMM_THREADS, "a tile takes 256 threads");
    static_assert(TM % 4 == 0 && TN % 4 == 0, "threads hold runs of 4");
    constexpr u32 RM = TM / 4, RN = TN / 4;
    constexpr u32 A_LOADS = BM * GEMM_BK / GEMM_THREADS, B_LOADS = BN * GEMM_BK / GEMM_THREADS;
    static_assert(A_LOADS >= 1 && B_LOADS >= 1, "every thread loads");
    __shared__ __align__(16) float as[2][GEMM_BK][BM + 4];
    __shared__ __align__(16) float bs[2][GEMM_BK][BN + 4];

    const u32 tid = threadIdx.x;
    const u32 tx = tid % TX, ty = tid / TX;
    const u32 row0 = blockIdx.x * BM, col0 = blockIdx.y * BN;

    // Where each of this thread's loads goes in the slice, and its row's (column's)
    // context. Rows past the matrix take the last one's context and are never read.
    using ACtx = decltype(a.row(0u));
    using BCtx = decltype(b.col(0u));
    u32 ai[A_LOADS], aq[A_LOADS], bj[B_LOADS], bq[B_LOADS];
    ACtx actx[A_LOADS];
    BCtx bctx[B_LOADS];
#pragma unroll
    for (u32 l = 0; l < A_LOADS; ++l) {
        u32 e = tid + l * GEMM_THREADS;
        ai[l] = a_k_fastest ? e / GEMM_BK : e % BM;
        aq[l] = a_k_fastest ? e % GEMM_BK : e / BM;
        actx[l] = a.row(min(row0 + ai[l], M - 1u));
    }
#pragma unroll
    for (u32 l = 0; l < B_LOADS; ++l) {
        u32 e = tid + l * GEMM_THREADS;
        bj[l] = b_k_fastest ? e / GEMM_BK : e % BN;
        bq[l] = b_k_fastest ? e % GEMM_BK : e / BN;
        bctx[l] = b.col(min(col0 + bj[l], N - 1u));
    }

    float areg[A_LOADS], breg[B_LOADS];
    auto load = [&](u32 k0) {
#pragma unroll
        for (u32 l = 0; l < A_LOADS; ++l) {
            u32 q = k0 + aq[l];
            areg[l] = (row0 + ai[l] < M && q < k_end) ? a.at(actx[l], q) : 0.0f;
        }
#pragma unroll
        for (u32 l = 0; l < B_LOADS; ++l) {
            u32 q = k0 + bq[l];
            breg[l] = (col0 + bj[l] < N && q < k_end) ? b.at(bctx[l], q) : 0.0f;
        }
    };
    auto stash = [&](u32 buf) {
#pragma unroll
        for (u32 l = 0; l < A_LOADS; ++l) as[buf][aq[l]][ai[l]] = areg[l];
#pragma unroll
        for (u32 l = 0; l < B_LOADS; ++l) bs[buf][bq[l]][bj[l]] = breg[l];
    };

    float acc[TM][TN];
#pragma unroll
    for (u32 r = 0; r < TM; ++r)
#pragma unroll
        for (u32 c = 0; c < TN; ++c) acc[r][c] = 0.0f;

    u32 buf = 0;
    load(k_begin);
    stash(0);
    __syncthreads();
    for (u32 k0 = k_begin; k0 < k_end; k0 += GEMM_BK) {
        const bool more = k0 + GEMM_BK < k_end;
        if (more) load(k0 + GEMM_BK);
#pragma unroll
        for (u32 q = 0; q < GEMM_BK; ++q) {
            float ra[TM], rb[TN];
#pragma unroll
            for (u32 r = 0; r < RM; ++r) {
                float4 v = *reinterpret_cast<const float4*>(&as[buf][q][r * (BM / RM) + ty * 4u]);
                ra[4 * r] = v.x;
                ra[4 * r + 1] = v.y;
                ra[4 * r + 2] = v.z;
                ra[4 * r + 3] = v.w;
            }
#pragma unroll
            for (u32 c = 0; c < RN; ++c) {
                float4 v = *reinterpret_cast<const float4*>(&bs[buf][q][c * (BN / RN) + tx * 4u]);
                rb[4 * c] = v.x;
                rb[4 * c + 1] = v.y;
                rb[4 * c + 2] = v.z;
                rb[4 * c + 3] = v.w;
            }
#pragma unroll
            for (u32 r = 0; r < TM; ++r)
#pragma unroll
                for (u32 c = 0; c < TN; ++c) acc[r][c] += ra[r] * rb[c];
        }
        if (more) stash(buf ^ 1u);
        __syncthreads();
        buf ^= 1u;
    }

#pragma unroll
    for (u32 r = 0; r < TM; ++r) {
        u32 i = row0 + (r / 4u) * (BM / RM) + ty * 4u + r % 4u;
        if (i >= M) continue;
#pragma unroll
        for (u32 c = 0; c < TN; ++c) {
            u32 j = col0 + (c / 4u) * (BN / RN) + tx * 4u + c % 4u;
            if (j < N) store(i, j, acc[r][c]);
        }
    }
}

// Expands `X(BM, BN, TM, TN, BLOCKS)` for every tile compiled, in the order of `Tile`
// in matmul/cuda.rs; each kernel file defines its `<name>_<BM>x<BN>` kernels with it,
// asking (`__launch_bounds__`) that BLOCKS blocks fit on a multiprocessor: two for the
// large tiles (128 registers a thread, without spills); the small ones fit three or
// more unasked.
#define GEMM_TILES(X)        \
    X(128, 128, 8, 8, 2)     \
    X(128, 64, 8, 4, 2)      \
    X(64, 64, 4, 4, 1)       \
    X(128, 32, 4, 4, 1)

// A plain m x k matrix as A: (i, q) is `a[i * k + q]`, or `a[q * m + i]` transposed.
struct GemmA {
    const float* a;
    u32 m;
    u32 k;
    bool transposed;
    __device__ __forceinline__ u64 row(u32 i) const { return transposed ? (u64)i : (u64)i * k; }
    __device__ __forceinline__ float at(u64 row, u32 q) const {
        return a[row + (transposed ? (u64)q * m : (u64)q)];
    }
};

// A plain k x n matrix as B: (q, j) is `b[q * n + j]`, or `b[j * k + q]` transposed.
struct GemmB {
    const float* b;
    u32 k;
    u32 n;
    bool transposed;
    __device__ __forceinline__ u64 col(u32 j) const { return transposed ? (u64)j * k : (u64)j; }
    __device__ __forceinline__ float at(u64 col, u32 q) const {
        return b[col + (transposed ? (u64)q : (u64)q * n)];
    }
};
