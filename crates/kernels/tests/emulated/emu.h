// A host emulation of the CUDA features kiln's kernels use, so that they can run as
// C++ on a machine without a GPU: blocks run one after another, each block's threads
// as real threads. `__shared__` becomes `static` (one block at a time), `__syncthreads`
// a barrier over the block, warp shuffles an exchange through a buffer between two
// barriers over the warp, atomics `std::atomic_ref`.
#pragma once
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)

struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};

using std::isfinite;
using std::max;
using std::min;
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }

namespace emu {
inline std::barrier<>* block_barrier;
inline std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
inline float shfl_f[1024];
inline double shfl_d[1024];

inline unsigned thread_rank() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

template <class T>
T shfl_down(T* buf, T v, int offset) {
    unsigned t = thread_rank();
    auto& bar = *warp_barriers[t / 32];
    buf[t] = v;
    bar.arrive_and_wait();
    T r = t % 32 + offset < 32 ? buf[t + offset] : v;
    bar.arrive_and_wait();
    return r;
}
}  // namespace emu

inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }
inline float __shfl_down_sync(unsigned, float v, int o) { return emu::shfl_down(emu::shfl_f, v, o); }
inline double __shfl_down_sync(unsigned, double v, int o) { return emu::shfl_down(emu::shfl_d, v, o); }
inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, sizeof f);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}
// CUDA's reciprocal square root (approximate on the device, exact enough here).
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline unsigned long long atomicMax(unsigned long long* p, unsigned long long v) {
    std::atomic_ref<unsigned long long> a(*p);
    unsigned long long cur = a.load();
    while (cur < v && !a.compare_exchange_weak(cur, v)) {
    }
    return cur;
}

// Runs `kernel(args...)` over `grid` blocks of `block` threads.
template <class F, class... Args>
void launch(dim3 grid, dim3 block, F kernel, Args... args) {
    gridDim = grid;
    blockDim = block;
    unsigned n = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                std::barrier<> bar(n);
                emu::block_barrier = &bar;
                emu::warp_barriers.clear();
                for (unsigned w = 0; w * 32 < n; ++w) {
                    emu::warp_barriers.push_back(std::make_unique<std::barrier<>>(min(32u, n - w * 32)));
                }
                std::vector<std::thread> threads;
                for (unsigned t = 0; t < n; ++t) {
                    threads.emplace_back([=] {
                        threadIdx = dim3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                        blockIdx = dim3{bx, by, bz};
                        kernel(args...);
                    });
                }
                for (auto& t : threads) t.join();
            }
}
