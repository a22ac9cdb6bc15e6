// Inverted dropout with the counter-based mask of `rng::uniform_at`, bit for bit: the
// same 64-bit SplitMix64 finaliser, the same top 24 bits, the same f32 arithmetic.

struct DropoutParams {
    u32 len;
    float rate;
    u64 seed;
};

__device__ __forceinline__ u64 mix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

__device__ __forceinline__ float uniform_at(u64 key, u64 index) {
    u64 bits = mix64(key ^ mix64(index + 0x9e3779b97f4a7c15ull));
    return (float)(bits >> 40) * (1.0f / 16777216.0f);
}

__device__ __forceinline__ void dropout_apply(DropoutParams p, const float* src, float* dst) {
    float scale = 1.0f / (1.0f - p.rate);
    KILN_FOR(i, p.len) {
        bool keep = uniform_at(p.seed, i) >= p.rate;
        dst[i] = keep ? src[i] * scale : 0.0f;
    }
}

// y = x * mask / (1 - rate).
extern "C" __global__ void dropout_fwd_f32(DropoutParams p, const float* x, float* y) {
    dropout_apply(p, x, y);
}

// dx = dy * mask / (1 - rate), with the forward's mask.
extern "C" __global__ void dropout_bwd_f32(DropoutParams p, const float* dy, float* dx) {
    dropout_apply(p, dy, dx);
}
