// Shared by every kernel module: index helpers and the activation functions, whose
// numbering matches `ActivationKind` in ops/activation/mod.rs.

typedef unsigned int u32;
typedef unsigned long long u64;

#define KILN_INFINITY __int_as_float(0x7f800000)

// A grid-stride loop over `n` elements with a 64-bit index.
#define KILN_FOR(i, n)                                                              \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (u64)(n);          \
         i += (u64)blockDim.x * gridDim.x)

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

// Reports index `i` in status word `word`; the host reads the smallest one reported.
__device__ __forceinline__ void kiln_report(u64* status, u32 word, u64 i) {
    atomicMax(&status[word], ~0ull - i);
}
