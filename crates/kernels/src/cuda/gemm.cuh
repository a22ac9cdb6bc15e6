// The SGEMM core shared by the matrix product and the convolutions. A block of 256
// threads computes a BM x BN tile of C = A * B, each thread TM x TN values of it held
// in registers, stepping through K in slices 16 deep (8 in the 128 x 128 tile) that
// are staged in shared memory.
//
// - Double buffering: while the block multiplies one slice out of shared memory, each
//   thread's loads of the next slice are in flight into registers; they are stored
//   into the other buffer afterwards, so one barrier a slice suffices.
// - A thread's TM rows are runs of 4 (of TM, when smaller) spread evenly over the tile
//   (likewise its columns), so that it reads them from shared memory as float4
//   (float2) and a warp's reads of B fall on distinct banks. Rows of the staged slices
//   are padded by 4 floats, which keeps both store patterns below free of bank
//   conflicts.
// - A and B are loaders rather than matrices, so that a convolution reads its patches
//   straight from the image (an implicit im2col). A thread loads the same rows of A
//   (columns of B) and the same offsets into each slice every time, so each loader
//   splits an index into a context worked out once, `row(i)` (`col(j)` for B), and a
//   context along K, `k(q)`, that `next(ctx, step)` moves forward by whole slices
//   without dividing; `at(row, k)` is the value.
// - A_KF says that A's consecutive q are consecutive in memory (else its consecutive i
//   are), likewise B_KF for B: a warp's loads walk memory in that order so that they
//   coalesce. They are compile-time, so a thread keeps one context where its loads
//   share it.
//
// Rows of C go along blockIdx.x, whose limit (2^31 - 1) is far above y's (65535): the
// long side of a convolution's product is its rows, one a pixel of the batch. The
// tiles compiled (GEMM_TILES below) match `Tile` in gemm.rs.

#define GEMM_THREADS 256u

// The depth of a staged slice of K. Deeper slices spread a slice's fixed costs (the
// barrier, the loop, moving the loaders' contexts) over more multiply-adds; the
// 128 x 128 tile stays at 8, since at 16 its 64 accumulators and twice the loads
// spill past the 128 registers that two blocks a multiprocessor allow.
template <u32 BM, u32 BN>
__host__ __device__ constexpr u32 gemm_depth() {
    return BM * BN >= 128u * 128u ? 8u : 16u;
}

// Reads W consecutive staged values (16- or 8-byte aligned) in one access.
template <u32 W>
__device__ __forceinline__ void gemm_run(const float* from, float* to) {
    if constexpr (W == 4) {
        float4 v = *reinterpret_cast<const float4*>(from);
        to[0] = v.x;
        to[1] = v.y;
        to[2] = v.z;
        to[3] = v.w;
    } else {
        float2 v = *reinterpret_cast<const float2*>(from);
        to[0] = v.x;
        to[1] = v.y;
    }
}

// The slices a block stages, double-buffered: the kernel declares them `__shared__`,
// once, however many layouts of the core it compiles.
template <u32 BM, u32 BN>
struct GemmShared {
    float a[2][gemm_depth<BM, BN>()][BM + 4];
    float b[2][gemm_depth<BM, BN>()][BN + 4];
};

template <u32 BM, u32 BN, u32 TM, u32 TN, bool A_KF, bool B_KF, class A, class B, class Store>
__device__ __forceinline__ void gemm_tile(GemmShared<BM, BN>& smem, u32 M, u32 N, u32 k_begin,
                                          u32 k_end, const A& a, const B& b, const Store& store) {
    constexpr u32 TX = BN / TN, TY = BM / TM, DEPTH = gemm_depth<BM, BN>();
    static_assert(TX * TY == GEMM_THREADS, "a tile takes 256 threads");
    // Runs of WM rows (WN columns), RM (RN) of them a thread.
    constexpr u32 WM = TM < 4 ? TM : 4, WN = TN < 4 ? TN : 4;
    static_assert(TM % WM == 0 && TN % WN == 0 && (WM == 2 || WM == 4) && (WN == 2 || WN == 4),
                  "threads hold runs of 2 or 4");
    constexpr u32 RM = TM / WM, RN = TN / WN;
    constexpr u32 A_LOADS = BM * DEPTH / GEMM_THREADS, B_LOADS = BN * DEPTH / GEMM_THREADS;
    static_assert(A_LOADS >= 1 && B_LOADS >= 1, "every thread loads");
    // Load l of A is (row r, K offset s): with A_KF every load has its own row and
    // they share the offset, else they share the row.
    constexpr u32 A_ROWS = A_KF ? A_LOADS : 1, A_KS = A_KF ? 1 : A_LOADS;
    constexpr u32 B_COLS = B_KF ? B_LOADS : 1, B_KS = B_KF ? 1 : B_LOADS;
    auto& as = smem.a;
    auto& bs = smem.b;

    const u32 tid = threadIdx.x;
    const u32 tx = tid % TX, ty = tid / TX;
    const u32 row0 = blockIdx.x * BM, col0 = blockIdx.y * BN;

    // Where this thread's loads go in the slice, and their contexts. Rows past the
    // matrix take the last one's context and are never read.
    using ARow = decltype(a.row(0u));
    using AK = decltype(a.k(0u));
    using BCol = decltype(b.col(0u));
    using BK = decltype(b.k(0u));
    u32 ai[A_ROWS], aq[A_KS], bj[B_COLS], bq[B_KS];
    ARow arow[A_ROWS];
    AK ak[A_KS];
    BCol bcol[B_COLS];
    BK bk[B_KS];
#pragma unroll
    for (u32 r = 0; r < A_ROWS; ++r) {
        ai[r] = A_KF ? tid / DEPTH + r * (GEMM_THREADS / DEPTH) : tid % BM;
        arow[r] = a.row(min(row0 + ai[r], M - 1u));
    }
#pragma unroll
    for (u32 s = 0; s < A_KS; ++s) {
        aq[s] = A_KF ? tid % DEPTH : tid / BM + s * (GEMM_THREADS / BM);
        ak[s] = a.k(k_begin + aq[s]);
    }
#pragma unroll
    for (u32 c = 0; c < B_COLS; ++c) {
        bj[c] = B_KF ? tid / DEPTH + c * (GEMM_THREADS / DEPTH) : tid % BN;
        bcol[c] = b.col(min(col0 + bj[c], N - 1u));
    }
#pragma unroll
    for (u32 s = 0; s < B_KS; ++s) {
        bq[s] = B_KF ? tid % DEPTH : tid / BN + s * (GEMM_THREADS / BN);
        bk[s] = b.k(k_begin + bq[s]);
    }

    // Loads the slice at k0 into registers and moves the K contexts to the next one:
    // called once for each slice, in order.
    float areg[A_LOADS], breg[B_LOADS];
    auto load = [&](u32 k0) {
#pragma unroll
        for (u32 l = 0; l < A_LOADS; ++l) {
            u32 r = A_KF ? l : 0, s = A_KF ? 0 : l;
            bool inside = row0 + ai[r] < M && k0 + aq[s] < k_end;
            areg[l] = inside ? a.at(arow[r], ak[s]) : 0.0f;
        }
#pragma unroll
        for (u32 l = 0; l < B_LOADS; ++l) {
            u32 c = B_KF ? l : 0, s = B_KF ? 0 : l;
            bool inside = col0 + bj[c] < N && k0 + bq[s] < k_end;
            breg[l] = inside ? b.at(bcol[c], bk[s]) : 0.0f;
        }
#pragma unroll
        for (u32 s = 0; s < A_KS; ++s) a.next(ak[s], DEPTH);
#pragma unroll
        for (u32 s = 0; s < B_KS; ++s) b.next(bk[s], DEPTH);
    };
    auto stash = [&](u32 buf) {
#pragma unroll
        for (u32 l = 0; l < A_LOADS; ++l) {
            as[buf][aq[A_KF ? 0 : l]][ai[A_KF ? l : 0]] = areg[l];
        }
#pragma unroll
        for (u32 l = 0; l < B_LOADS; ++l) {
            bs[buf][bq[B_KF ? 0 : l]][bj[B_KF ? l : 0]] = breg[l];
        }
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
    for (u32 k0 = k_begin; k0 < k_end; k0 += DEPTH) {
        const bool more = k0 + DEPTH < k_end;
        if (more) load(k0 + DEPTH);
#pragma unroll
        for (u32 q = 0; q < DEPTH; ++q) {
            float ra[TM], rb[TN];
#pragma unroll
            for (u32 r = 0; r < RM; ++r) {
                gemm_run<WM>(&as[buf][q][r * (BM / RM) + ty * WM], &ra[WM * r]);
            }
#pragma unroll
            for (u32 c = 0; c < RN; ++c) {
                gemm_run<WN>(&bs[buf][q][c * (BN / RN) + tx * WN], &rb[WN * c]);
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
        u32 i = row0 + (r / WM) * (BM / RM) + ty * WM + r % WM;
        if (i >= M) continue;
#pragma unroll
        for (u32 c = 0; c < TN; ++c) {
            u32 j = col0 + (c / WN) * (BN / RN) + tx * WN + c % WN;
            if (j < N) store(i, j, acc[r][c]);
        }
    }
}

// Expands `X(BM, BN, TM, TN, BLOCKS)` for every tile compiled, in the order of `Tile`
// in gemm.rs; each kernel file defines its `<name>_<BM>x<BN>` kernels with it,
// asking (`__launch_bounds__`) that BLOCKS blocks fit on a multiprocessor: two for the
// large tiles (128 registers a thread, without spills), four for the tiny one (64);
// the others fit two unasked. `Tile::resident` in gemm.rs counts on these.
#define GEMM_TILES(X)        \
    X(128, 128, 8, 8, 2)     \
    X(128, 64, 8, 4, 2)      \
    X(64, 64, 4, 4, 1)       \
    X(128, 32, 4, 4, 1)      \
    X(32, 32, 2, 2, 4)

// A plain m x k matrix as A: (i, q) is `a[i * k + q]`, or `a[q * m + i]` when
// transposed (T). Both contexts are offsets, so a value is one addition away.
template <bool T>
struct GemmA {
    const float* a;
    u32 m;
    u32 cols;
    __device__ __forceinline__ u64 row(u32 i) const { return T ? (u64)i : (u64)i * cols; }
    __device__ __forceinline__ u64 k(u32 q) const { return T ? (u64)q * m : (u64)q; }
    __device__ __forceinline__ void next(u64& at, u32 step) const {
        at += T ? (u64)step * m : (u64)step;
    }
    __device__ __forceinline__ float at(u64 row, u64 k) const { return a[row + k]; }
};

// A plain k x n matrix as B: (q, j) is `b[q * n + j]`, or `b[j * k + q]` when
// transposed (T).
template <bool T>
struct GemmB {
    const float* b;
    u32 rows;
    u32 n;
    __device__ __forceinline__ u64 col(u32 j) const { return T ? (u64)j * rows : (u64)j; }
    __device__ __forceinline__ u64 k(u32 q) const { return T ? (u64)q : (u64)q * n; }
    __device__ __forceinline__ void next(u64& at, u32 step) const {
        at += T ? (u64)step : (u64)step * n;
    }
    __device__ __forceinline__ float at(u64 col, u64 k) const { return b[col + k]; }
};
