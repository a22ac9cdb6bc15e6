// Optimizer updates: one fused pass over a parameter tensor, its gradient and its
// state slots, with the CPU backend's arithmetic in the same order (compiled without
// FMA contraction, so both round alike).

struct OptimizerParams {
    u32 kind;
    u32 len;
    u32 flags;
    float grad_scale;
    float clip_value;
    float weight_decay;
    float decay;
    float lr;
    float beta1;
    float beta2;
    float one_minus_beta1;
    float one_minus_beta2;
    float eps;
    float momentum;
    float coef1;
    float coef2;
    float coef3;
};

enum { SGD = 0, ADAM = 1, RMSPROP = 2, ADAGRAD = 3, NADAM = 4, LION = 5 };
enum { FLAG_NESTEROV = 1, FLAG_AMSGRAD = 2, FLAG_CENTERED = 4 };

// The gradient after scaling, clamping (NaN passes) and coupled decay.
__device__ __forceinline__ float prepared(const OptimizerParams& p, float g, float w) {
    g = g * p.grad_scale;
    float bound = p.clip_value;
    g = g > bound ? bound : (g < -bound ? -bound : g);
    return p.weight_decay != 0.0f ? g + p.weight_decay * w : g;
}

// a + weight * (b - a), as torch.lerp.
__device__ __forceinline__ float lerp(float a, float b, float weight) {
    return weight < 0.5f ? a + weight * (b - a) : b - (b - a) * (1.0f - weight);
}

__device__ __forceinline__ float sign_of(float x) {
    return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
}

// One tensor's update, over the x dimension of the grid. `state` holds the rule's
// slots one after another, `len` values each.
__device__ __forceinline__ void optimizer_update(const OptimizerParams& p, float* param,
                                                 const float* grad, float* state) {
    u64 len = p.len;
    float* s0 = state;
    float* s1 = state + len;
    float* s2 = state + 2 * len;
    float neg_lr = -p.lr;
    KILN_FOR(i, len) {
        float w = param[i];
        if (p.decay != 1.0f) w = w * p.decay;
        float g = prepared(p, grad[i], w);
        switch (p.kind) {
            case SGD:
                if (p.momentum == 0.0f) {
                    w = w + neg_lr * g;
                } else {
                    float buf = s0[i] * p.momentum + g;
                    s0[i] = buf;
                    float step = (p.flags & FLAG_NESTEROV) ? g + p.momentum * buf : buf;
                    w = w + neg_lr * step;
                }
                break;
            case ADAM: {
                float inv_bc2_sqrt = 1.0f / p.coef1;
                float m = lerp(s0[i], g, p.one_minus_beta1);
                float v = s1[i] * p.beta2 + p.one_minus_beta2 * g * g;
                s0[i] = m;
                s1[i] = v;
                if (p.flags & FLAG_AMSGRAD) {
                    float vmax = fmaxf(s2[i], v);
                    s2[i] = vmax;
                    v = vmax;
                }
                w = w + p.coef2 * m / (sqrtf(v) * inv_bc2_sqrt + p.eps);
                break;
            }
            case RMSPROP: {
                bool with_momentum = p.momentum > 0.0f;
                bool centered = (p.flags & FLAG_CENTERED) != 0;
                float* buf = with_momentum ? s1 : s2;
                float* grad_avg = with_momentum ? s2 : s1;
                float sq = s0[i] * p.beta2 + p.one_minus_beta2 * g * g;
                s0[i] = sq;
                float avg;
                if (centered) {
                    float ga = lerp(grad_avg[i], g, p.one_minus_beta2);
                    grad_avg[i] = ga;
                    avg = sqrtf(sq + -ga * ga);
                } else {
                    avg = sqrtf(sq);
                }
                avg = avg + p.eps;
                if (with_momentum) {
                    float b = buf[i] * p.momentum + g / avg;
                    buf[i] = b;
                    w = w + neg_lr * b;
                } else {
                    w = w + neg_lr * g / avg;
                }
                break;
            }
            case ADAGRAD: {
                float sum = s0[i] + g * g;
                s0[i] = sum;
                w = w + neg_lr * g / (sqrtf(sum) + p.eps);
                break;
            }
            case NADAM: {
                float m = lerp(s0[i], g, p.one_minus_beta1);
                float v = s1[i] * p.beta2 + p.one_minus_beta2 * g * g;
                s0[i] = m;
                s1[i] = v;
                float denom = sqrtf(v / p.coef1) + p.eps;
                w = w + p.coef2 * g / denom;
                w = w + p.coef3 * m / denom;
                break;
            }
            case LION: {
                float m = s0[i];
                float c = m * p.beta1 + g * p.one_minus_beta1;
                w = w + neg_lr * sign_of(c);
                s0[i] = m * p.beta2 + g * p.one_minus_beta2;
                break;
            }
        }
        param[i] = w;
    }
}

// Up to OPTIMIZER_GROUP tensors in one launch, tensor blockIdx.y: a model's small
// tensors cost one launch instead of one each (one tensor is a group of one). Matches
// `OptimizerGroup` in cuda.rs. The whole update skips while a kernel's error waits in
// `status` (a non-finite loss input or gradient, an invalid label): the step that
// found it changes nothing.
#define OPTIMIZER_GROUP 8
struct OptimizerGroup {
    u32 count;
    OptimizerParams p[OPTIMIZER_GROUP];
    float* param[OPTIMIZER_GROUP];
    const float* grad[OPTIMIZER_GROUP];
    float* state[OPTIMIZER_GROUP];
};

extern "C" __global__ void optimizer_group_fwd_f32(OptimizerGroup g, const u64* status) {
    if (kiln_error_pending(status) || blockIdx.y >= g.count) return;
    u32 t = blockIdx.y;
    optimizer_update(g.p[t], g.param[t], g.grad[t], g.state[t]);
}
