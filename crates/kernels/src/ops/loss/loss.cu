// Losses: one thread a sample, the same arithmetic as the CPU backend's `sample`
// (the loss in double, the gradient in float). The status words take the first
// non-finite output value and the first sample with an invalid class label.

struct LossParams {
    u32 kind;
    u32 input;
    u32 batch;
    u32 features;
    u32 weighted;
    float label_smoothing;
    float delta;
    float epsilon;
    float grad_scale;
};

enum { MSE = 0, MAE = 1, HUBER = 2, LOG_COSH = 3, BCE = 4, CCE = 5, SPARSE_CCE = 6 };
enum { PREDICTION = 0, LOGITS = 1, ACTIVATED = 2 };

__device__ __forceinline__ float sign_of(float x) {
    return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
}

__device__ __forceinline__ float smooth(float y, float s, float share) {
    return s == 0.0f ? y : y * (1.0f - s) + s * share;
}

__device__ __forceinline__ float clampf(float v, float lo, float hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

// log(cosh(x)) without overflow.
__device__ __forceinline__ double log_cosh(double x) {
    double a = fabs(x);
    return a + log1p(exp(-2.0 * a)) - 0.69314718055994530942;
}

// One sample's loss (unweighted) and its unscaled gradient in g.
__device__ double sample(LossParams p, const float* o, const float* t, u32 label, float* g) {
    u32 n = p.features;
    float f = (float)n;
    float eps = p.epsilon, ls = p.label_smoothing;
    double sum = 0.0;
    switch (p.kind) {
        case MSE:
            for (u32 c = 0; c < n; ++c) {
                float d = o[c] - t[c];
                sum += (double)d * (double)d;
                g[c] = 2.0f * d / f;
            }
            return sum / (double)f;
        case MAE:
            for (u32 c = 0; c < n; ++c) {
                float d = o[c] - t[c];
                sum += (double)fabsf(d);
                g[c] = sign_of(d) / f;
            }
            return sum / (double)f;
        case HUBER:
            for (u32 c = 0; c < n; ++c) {
                float d = o[c] - t[c];
                if (fabsf(d) < p.delta) {
                    sum += 0.5 * (double)d * (double)d;
                    g[c] = d / f;
                } else {
                    sum += (double)p.delta * ((double)fabsf(d) - 0.5 * (double)p.delta);
                    g[c] = p.delta * sign_of(d) / f;
                }
            }
            return sum / (double)f;
        case LOG_COSH:
            for (u32 c = 0; c < n; ++c) {
                float d = o[c] - t[c];
                sum += log_cosh((double)d);
                g[c] = tanhf(d) / f;
            }
            return sum / (double)f;
        case BCE:
            for (u32 c = 0; c < n; ++c) {
                float y = smooth(t[c], ls, 0.5f);
                float oc = o[c];
                if (p.input == LOGITS) {
                    double z = (double)oc;
                    sum += fmax(z, 0.0) - z * (double)y + log1p(exp(-fabs(z)));
                    g[c] = (kiln_sigmoid(oc) - y) / f;
                } else {
                    float pc = clampf(oc, eps, 1.0f - eps);
                    double pd = (double)pc, yd = (double)y;
                    sum -= yd * log(pd) + (1.0 - yd) * log(1.0 - pd);
                    if (p.input == ACTIVATED) {
                        g[c] = (oc - y) / f;
                    } else if (oc > eps && oc < 1.0f - eps) {
                        g[c] = (oc - y) / (oc * (1.0f - oc)) / f;
                    } else {
                        g[c] = 0.0f;
                    }
                }
            }
            return sum / (double)f;
        default: {
            bool sparse = p.kind == SPARSE_CCE;
            float share = 1.0f / f;
#define TARGET(c) smooth(sparse ? ((c) == label ? 1.0f : 0.0f) : t[c], ls, share)
            float y_sum = 0.0f;
            if (p.input == LOGITS) {
                float m = -KILN_INFINITY;
                for (u32 c = 0; c < n; ++c) m = fmaxf(m, o[c]);
                double denom = 0.0;
                for (u32 c = 0; c < n; ++c) denom += exp((double)(o[c] - m));
                double lse = (double)m + log(denom);
                for (u32 c = 0; c < n; ++c) {
                    float y = TARGET(c);
                    y_sum += y;
                    if (y != 0.0f) sum += (double)y * (lse - (double)o[c]);
                }
                for (u32 c = 0; c < n; ++c) {
                    float softmax = (float)exp((double)o[c] - lse);
                    g[c] = softmax * y_sum - TARGET(c);
                }
            } else {
                for (u32 c = 0; c < n; ++c) {
                    float y = TARGET(c);
                    y_sum += y;
                    if (y != 0.0f) sum -= (double)y * log((double)clampf(o[c], eps, 1.0f - eps));
                }
                for (u32 c = 0; c < n; ++c) {
                    float y = TARGET(c), pr = o[c];
                    if (p.input == ACTIVATED) {
                        g[c] = pr * y_sum - y;
                    } else if (pr > eps && pr < 1.0f - eps) {
                        g[c] = -y / pr;
                    } else {
                        g[c] = 0.0f;
                    }
                }
            }
#undef TARGET
            return sum;
        }
    }
}

extern "C" __global__ void loss_fwd_f32(
    LossParams p, const float* output, const float* target, const float* weights,
    float* per_sample, float* grad, u64* status) {
    KILN_FOR(i, p.batch) {
        u64 row = i * p.features;
        const float* o = output + row;
        bool finite = true;
        for (u32 c = 0; c < p.features; ++c) {
            if (!isfinite(o[c])) {
                kiln_report(status, STATUS_NON_FINITE_OUTPUT, row + c, o[c]);
                finite = false;
                break;
            }
        }
        if (!finite) continue;
        u32 label = 0;
        const float* t = target + row;
        if (p.kind == SPARSE_CCE) {
            float v = target[i];
            if (!(v >= 0.0f && v == truncf(v) && v < (float)p.features)) {
                kiln_report(status, STATUS_INVALID_TARGET, i, v);
                continue;
            }
            label = (u32)v;
            t = target;
        }
        float* g = grad + row;
        double value = sample(p, o, t, label, g);
        float w = p.weighted ? weights[i] : 1.0f;
        per_sample[i] = (float)(value * (double)w);
        float scale = p.grad_scale * w;
        for (u32 c = 0; c < p.features; ++c) g[c] = g[c] * scale;
    }
}
