// Shared by every kernel module: index helpers and the activation functions, whose
// numbering matches `ActivationKind` in ops/activation/mod.rs.

typedef unsigned int u32;
typedef unsigned long long u64;

#define KILN_INFINITY __int_as_float(0x7f800000)

// A grid-stride loop over `n` elements with a 64-bit index.
#define KILN_FOR(i, n)                                                              \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (u64)(n);          \
         i += (u64)blockDim.x * gridDim.x)

// The same loop with a 32-bit index, for tensors small enough that `i` and each step
// past the end stay under 2^32: a 64-bit division costs several 32-bit ones, and the
// index kernels divide for every element. Use behind `kiln_fits_u32(n)`.
#define KILN_FOR_U32(i, n)                                                          \
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < (u32)(n);               \
         i += blockDim.x * gridDim.x)

__device__ __forceinline__ bool kiln_fits_u32(u64 n) {
    return n + (u64)blockDim.x * gridDim.x <= 0xffffffffull;
}

// `body` for each `i` below `n` in a grid-stride loop: `i` is 32-bit where every
// index up to `extent` fits (`KILN_FOR_U32`), else 64-bit, so a template called with
// `i` is compiled for both.
#define KILN_FOR_EACH(i, n, extent, body)                                           \
    if (kiln_fits_u32(extent)) {                                                    \
        KILN_FOR_U32(i, n) { body; }                                                \
    } else {                                                                        \
        KILN_FOR(i, n) { body; }                                                    \
    }

enum ActivationKind : u32 {
    ACT_LINEAR = 0,
    ACT_RELU = 1,
    ACT_LEAKY_RELU = 2,
    ACT_SIGMOID = 3,
    ACT_TANH = 4,
    ACT_GELU = 5,
    ACT_SOFTMAX = 6,
};

__device__ __forceinline__ float kiln_sigmoid(float x) {
    if (x >= 0.0f) {
        return 1.0f / (1.0f + expf(-x));
    }
    float e = expf(x);
    return e / (1.0f + e);
}

// f(x) for the element-wise kinds; softmax (a row function) is the identity here.
// `x < 0` is false for NaN, which therefore propagates, as on the CPU.
__device__ __forceinline__ float kiln_activate(u32 kind, float slope, float x) {
    switch (kind) {
        case ACT_RELU: return x < 0.0f ? 0.0f : x;
        case ACT_LEAKY_RELU: return x < 0.0f ? slope * x : x;
        case ACT_SIGMOID: return kiln_sigmoid(x);
        case ACT_TANH: return tanhf(x);
        case ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
        default: return x;
    }
}

// The sum of `v` over the block (`float` or `double`); every thread gets it. `scratch`
// holds 32 values. The block is at most 1024 threads, a multiple of 32.
template <typename T>
__device__ T kiln_block_sum(T v, T* scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    u32 warps = (blockDim.x + 31u) >> 5;
    v = threadIdx.x < warps ? scratch[threadIdx.x] : T(0);
    if (warp == 0) {
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    return scratch[0];
}

// The largest of `v` over the block, NaN ignored (as `f32::max`); every thread gets it.
__device__ float kiln_block_max(float v, float* scratch) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    u32 warps = (blockDim.x + 31u) >> 5;
    v = threadIdx.x < warps ? scratch[threadIdx.x] : -KILN_INFINITY;
    if (warp == 0) {
        for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    return scratch[0];
}

// The status words kernels report errors through (see `cuda::report` on the host),
// which stay on the device until the host asks (`Storage::check_errors`).
enum StatusWord : u32 {
    STATUS_NON_FINITE_OUTPUT = 0,  // a loss's input
    STATUS_INVALID_TARGET = 1,     // a label of a loss or a metric
    STATUS_NON_FINITE = 2,         // a checked buffer (`check_finite`)
    STATUS_WORDS = 3,
};

// Reports element `i` (below 2^32 - 1) holding `value` in status word `word`. The
// word keeps the complement of the smallest (i, value bits) reported, so zero means
// nothing to report and the host reads the first bad element with its value.
__device__ __forceinline__ void kiln_report(u64* status, u32 word, u64 i, float value) {
    atomicMax(&status[word], ~((i << 32) | (u64)__float_as_uint(value)));
}

// Whether any error is waiting in the status words: the optimizer updates skip then,
// so that a step that went wrong changes no weight.
__device__ __forceinline__ bool kiln_error_pending(const u64* status) {
    return (status[STATUS_NON_FINITE_OUTPUT] | status[STATUS_INVALID_TARGET] |
            status[STATUS_NON_FINITE]) != 0;
}
