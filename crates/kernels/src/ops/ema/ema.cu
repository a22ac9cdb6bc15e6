// The exponential moving average: average = lerp(average, value, weight), with the
// CPU backend's arithmetic (compiled without FMA contraction, so both round alike).

struct EmaParams {
    u32 len;
    float weight;
};

// torch.lerp: a + w * (b - a) below one half, b - (b - a) * (1 - w) from one half on.
__device__ __forceinline__ float ema_blend(float a, float b, float w) {
    return w < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

// Up to EMA_GROUP tensors in one launch, tensor blockIdx.y (one tensor is a group of
// one). Matches `EmaGroup` in cuda.rs. Skips while a kernel's error waits in `status`,
// as the optimizer's update does: the step that found it changes no average either.
#define EMA_GROUP 8
struct EmaGroup {
    u32 count;
    EmaParams p[EMA_GROUP];
    float* average[EMA_GROUP];
    const float* value[EMA_GROUP];
};

extern "C" __global__ void ema_group_fwd_f32(EmaGroup g, const u64* status) {
    if (kiln_error_pending(status) || blockIdx.y >= g.count) return;
    u32 t = blockIdx.y;
    EmaParams p = g.p[t];
    float* average = g.average[t];
    const float* value = g.value[t];
    KILN_FOR(i, p.len) { average[i] = ema_blend(average[i], value[i], p.weight); }
}
