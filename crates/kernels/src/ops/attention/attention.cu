// Fused attention over a packed `[batch, time, 3 * width]` projection, one thread a
// query row (or key row), an online softmax over the keys: the attention matrix is
// never stored. The backward pass recomputes each probability from the forward's
// log-sum-exp. Head dimensions up to KILN_ATTENTION_MAX_DIM (checked on the host).

#define KILN_ATTENTION_MAX_DIM 128

struct AttentionParams {
    u32 batch;
    u32 time;
    u32 heads;
    u32 head_dim;
    u32 causal;
};

// Offsets of (sequence b, head h): row t's query/key/value start at
// base + t * 3 * width + part * width, its output at out + t * width.
struct AttentionHead {
    u64 base;
    u64 out;
    u64 stats;
    u32 width;
};

__device__ __forceinline__ AttentionHead attention_head(const AttentionParams& p, u32 bh) {
    u32 b = bh / p.heads, h = bh - b * p.heads;
    u32 width = p.heads * p.head_dim;
    AttentionHead hd;
    hd.base = (u64)b * p.time * 3 * width + (u64)h * p.head_dim;
    hd.out = (u64)b * p.time * width + (u64)h * p.head_dim;
    hd.stats = (u64)bh * p.time;
    hd.width = width;
    return hd;
}

__device__ __forceinline__ u64 attention_at(const AttentionHead& hd, u32 t, u32 part) {
    return hd.base + (u64)t * 3 * hd.width + (u64)part * hd.width;
}

__device__ __forceinline__ float attention_dot(const float* a, const float* b, u32 d) {
    float s = 0.0f;
    for (u32 i = 0; i < d; i++) s += a[i] * b[i];
    return s;
}

// o and lse: one thread a query row, the keys one at a time with a running maximum.
extern "C" __global__ void attention_fwd_f32(AttentionParams p, const float* qkv, float* o,
                                             float* lse) {
    float scale = rsqrtf((float)p.head_dim);
    u64 n = (u64)p.batch * p.heads * p.time;
    KILN_FOR(i, n) {
        u32 bh = (u32)(i / p.time), t = (u32)(i - (u64)bh * p.time);
        AttentionHead hd = attention_head(p, bh);
        const float* q = qkv + attention_at(hd, t, 0);
        float acc[KILN_ATTENTION_MAX_DIM];
        for (u32 c = 0; c < p.head_dim; c++) acc[c] = 0.0f;
        float m = -KILN_INFINITY, l = 0.0f;
        u32 keys = p.causal ? t + 1 : p.time;
        for (u32 k = 0; k < keys; k++) {
            float s = attention_dot(q, qkv + attention_at(hd, k, 1), p.head_dim) * scale;
            float nm = fmaxf(m, s);
            float rescale = expf(m - nm), e = expf(s - nm);
            const float* v = qkv + attention_at(hd, k, 2);
            for (u32 c = 0; c < p.head_dim; c++) acc[c] = acc[c] * rescale + e * v[c];
            l = l * rescale + e;
            m = nm;
        }
        float inv = 1.0f / l;
        float* out = o + hd.out + (u64)t * hd.width;
        for (u32 c = 0; c < p.head_dim; c++) out[c] = acc[c] * inv;
        lse[hd.stats + t] = m + logf(l);
    }
}

// delta = rowsum(do * o), one thread a query row.
extern "C" __global__ void attention_delta_bwd_f32(AttentionParams p, const float* o,
                                                   const float* d_o, float* delta) {
    u64 n = (u64)p.batch * p.heads * p.time;
    KILN_FOR(i, n) {
        u32 bh = (u32)(i / p.time), t = (u32)(i - (u64)bh * p.time);
        AttentionHead hd = attention_head(p, bh);
        u64 r = hd.out + (u64)t * hd.width;
        delta[i] = attention_dot(d_o + r, o + r, p.head_dim);
    }
}

// dk and dv, one thread a key row, over the queries that see it.
extern "C" __global__ void attention_bwd_f32(AttentionParams p, const float* qkv,
                                             const float* lse, const float* d_o,
                                             const float* delta, float* dqkv) {
    float scale = rsqrtf((float)p.head_dim);
    u64 n = (u64)p.batch * p.heads * p.time;
    KILN_FOR(i, n) {
        u32 bh = (u32)(i / p.time), k = (u32)(i - (u64)bh * p.time);
        AttentionHead hd = attention_head(p, bh);
        const float* key = qkv + attention_at(hd, k, 1);
        const float* v = qkv + attention_at(hd, k, 2);
        float dk[KILN_ATTENTION_MAX_DIM], dv[KILN_ATTENTION_MAX_DIM];
        for (u32 c = 0; c < p.head_dim; c++) dk[c] = dv[c] = 0.0f;
        for (u32 t = p.causal ? k : 0; t < p.time; t++) {
            const float* q = qkv + attention_at(hd, t, 0);
            const float* g = d_o + hd.out + (u64)t * hd.width;
            float pr = expf(attention_dot(q, key, p.head_dim) * scale - lse[hd.stats + t]);
            float ds = pr * (attention_dot(g, v, p.head_dim) - delta[hd.stats + t]) * scale;
            for (u32 c = 0; c < p.head_dim; c++) {
                dv[c] += pr * g[c];
                dk[c] += ds * q[c];
            }
        }
        float* gk = dqkv + attention_at(hd, k, 1);
        float* gv = dqkv + attention_at(hd, k, 2);
        for (u32 c = 0; c < p.head_dim; c++) {
            gk[c] = dk[c];
            gv[c] = dv[c];
        }
    }
}

// dq, one thread a query row, over the keys it sees.
extern "C" __global__ void attention_dq_bwd_f32(AttentionParams p, const float* qkv,
                                                const float* lse, const float* d_o,
                                                const float* delta, float* dqkv) {
    float scale = rsqrtf((float)p.head_dim);
    u64 n = (u64)p.batch * p.heads * p.time;
    KILN_FOR(i, n) {
        u32 bh = (u32)(i / p.time), t = (u32)(i - (u64)bh * p.time);
        AttentionHead hd = attention_head(p, bh);
        const float* q = qkv + attention_at(hd, t, 0);
        const float* g = d_o + hd.out + (u64)t * hd.width;
        float dq[KILN_ATTENTION_MAX_DIM];
        for (u32 c = 0; c < p.head_dim; c++) dq[c] = 0.0f;
        u32 keys = p.causal ? t + 1 : p.time;
        for (u32 k = 0; k < keys; k++) {
            const float* key = qkv + attention_at(hd, k, 1);
            float pr = expf(attention_dot(q, key, p.head_dim) * scale - lse[hd.stats + t]);
            float ds = pr * (attention_dot(g, qkv + attention_at(hd, k, 2), p.head_dim) -
                             delta[hd.stats + t]) * scale;
            for (u32 c = 0; c < p.head_dim; c++) dq[c] += ds * key[c];
        }
        float* gq = dqkv + attention_at(hd, t, 0);
        for (u32 c = 0; c < p.head_dim; c++) gq[c] = dq[c];
    }
}
