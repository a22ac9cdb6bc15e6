// Metric accumulation: classification counts with one thread a sample and atomic
// additions (of whole numbers, so their order does not matter); regression sums with
// one block, reduced in double and added to the compensated sums by one thread.
// The invalid-target status word takes the first sample with an invalid class label.

struct MetricParams {
    u32 kind;
    u32 batch;
    u32 features;
    u32 sparse;
    u32 top_k;
    float threshold;
};

// The index of the largest value, the first on ties (as `metric::argmax`).
__device__ __forceinline__ u32 argmax(const float* row, u32 n) {
    u32 best = 0;
    for (u32 i = 1; i < n; ++i) {
        if (row[i] > row[best]) best = i;
    }
    return best;
}

extern "C" __global__ void confusion_fwd_f32(
    MetricParams p, const float* output, const float* target, float* acc, u64* status) {
    u32 f = p.features;
    u32 classes = f == 1 ? 2 : f;
    u32 hits = classes * classes, count = hits + 1;
    KILN_FOR(i, p.batch) {
        const float* row = output + i * f;
        u32 truth, predicted;
        bool hit;
        if (f == 1) {
            truth = target[i] >= 0.5f ? 1 : 0;
            predicted = row[0] >= p.threshold ? 1 : 0;
            hit = truth == predicted;
        } else {
            if (p.sparse != 0) {
                float v = target[i];
                if (!(v >= 0.0f && v == truncf(v) && v < (float)f)) {
                    kiln_report(status, STATUS_INVALID_TARGET, i, v);
                    continue;
                }
                truth = (u32)v;
            } else {
                truth = argmax(target + i * f, f);
            }
            u32 above = 0;
            for (u32 c = 0; c < f; ++c) above += row[c] > row[truth] ? 1 : 0;
            predicted = argmax(row, f);
            hit = above < (p.top_k > 1 ? p.top_k : 1);
        }
        atomicAdd(&acc[truth * classes + predicted], 1.0f);
        if (hit) atomicAdd(&acc[hits], 1.0f);
        atomicAdd(&acc[count], 1.0f);
    }
}

__device__ __forceinline__ void kahan_add(float* acc, u32 slot, float v) {
    float y = v - acc[slot + 1];
    float t = acc[slot] + y;
    acc[slot + 1] = (t - acc[slot]) - y;
    acc[slot] = t;
}

// One block: the batch's four sums in double, then one compensated addition each.
extern "C" __global__ void regression_fwd_f32(u64 n, const float* output, const float* target,
                                              float* acc) {
    __shared__ double scratch[32];
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    for (u64 i = threadIdx.x; i < n; i += blockDim.x) {
        float e = output[i] - target[i], t = target[i];
        s[0] += (double)fabsf(e);
        s[1] += (double)(e * e);
        s[2] += (double)t;
        s[3] += (double)(t * t);
    }
    for (int k = 0; k < 4; ++k) s[k] = kiln_block_sum(s[k], scratch);
    if (threadIdx.x == 0) {
        for (int k = 0; k < 4; ++k) kahan_add(acc, 2u * k, (float)s[k]);
        acc[8] += (float)n;
    }
}
