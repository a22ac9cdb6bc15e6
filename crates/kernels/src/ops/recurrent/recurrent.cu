// The LSTM's time loop, one launch a step (and three a step back through time).
// Sequences are batch-major, [batch, time, ..]; gates come in blocks i, f, g, o of
// `units` each. One thread a (sample, unit): it adds the recurrent product of its
// four gates to the input projection, then runs the cell, so the gates of a step
// never leave registers before they are activated.

struct RecurrentParams {
    u32 batch;
    u32 time;
    u32 units;
    u32 return_sequences;
    u32 carry;
};

// With `carry`: the previous call's last step becomes the initial state.
extern "C" __global__ void lstm_carry_fwd_f32(RecurrentParams p, const float* cells,
                                              const float* hidden, float* c0, float* h0) {
    u32 h = p.units;
    KILN_FOR(i, (u64)p.batch * h) {
        u64 b = i / h;
        u64 j = i - b * h;
        u64 last = (b * p.time + p.time - 1) * h + j;
        c0[i] = cells[last];
        h0[i] = hidden[last];
    }
}

// Step t forward: gates[b, t] += h[b, t-1] U; activate; c, h of step t; the output.
extern "C" __global__ void lstm_fwd_f32(RecurrentParams p, u32 t, const float* u,
                                        float* gates, float* cells, float* hidden,
                                        const float* c0, const float* h0, float* y) {
    u32 h = p.units;
    u64 w = 4ull * h;
    KILN_FOR(i, (u64)p.batch * h) {
        u64 b = i / h;
        u64 j = i - b * h;
        u64 row = b * p.time + t;
        float* g = gates + row * w;
        float pre[4];
        for (int k = 0; k < 4; ++k) {
            pre[k] = g[k * h + j];
        }
        if (t > 0 || p.carry) {
            const float* prev = t > 0 ? hidden + (row - 1) * h : h0 + b * h;
            for (u32 q = 0; q < h; ++q) {
                float hq = prev[q];
                const float* uq = u + q * w + j;
                for (int k = 0; k < 4; ++k) {
                    pre[k] += hq * uq[k * h];
                }
            }
        }
        float ig = kiln_sigmoid(pre[0]);
        float fg = kiln_sigmoid(pre[1]);
        float gg = tanhf(pre[2]);
        float og = kiln_sigmoid(pre[3]);
        float c_prev = t > 0 ? cells[(row - 1) * h + j] : (p.carry ? c0[b * h + j] : 0.0f);
        float c = fg * c_prev + ig * gg;
        float hv = og * tanhf(c);
        cells[row * h + j] = c;
        hidden[row * h + j] = hv;
        g[j] = ig;
        g[h + j] = fg;
        g[2 * h + j] = gg;
        g[3 * h + j] = og;
        if (p.return_sequences) {
            y[row * h + j] = hv;
        } else if (t + 1 == p.time) {
            y[b * h + j] = hv;
        }
    }
}

// The output gradient spread over every step's hidden state (zero off the last step
// when only the last is returned).
extern "C" __global__ void lstm_dy_bwd_f32(RecurrentParams p, const float* dy, float* dhidden) {
    u32 h = p.units;
    KILN_FOR(i, (u64)p.batch * p.time * h) {
        if (p.return_sequences) {
            dhidden[i] = dy[i];
        } else {
            u64 row = i / h;
            u64 j = i - row * h;
            u64 b = row / p.time;
            u64 t = row - b * p.time;
            dhidden[i] = t + 1 == p.time ? dy[b * h + j] : 0.0f;
        }
    }
}

// Step t back: the gates' gradient at their pre-activations, in place of the
// activated gates, and the cell's gradient carried to step t-1.
extern "C" __global__ void lstm_bwd_f32(RecurrentParams p, u32 t, float* gates,
                                        const float* cells, const float* c0,
                                        const float* dhidden, float* dcell) {
    u32 h = p.units;
    u64 w = 4ull * h;
    KILN_FOR(i, (u64)p.batch * h) {
        u64 b = i / h;
        u64 j = i - b * h;
        u64 row = b * p.time + t;
        float* g = gates + row * w;
        float ig = g[j], fg = g[h + j], gg = g[2 * h + j], og = g[3 * h + j];
        float tc = tanhf(cells[row * h + j]);
        float dh = dhidden[row * h + j];
        float dc = dcell[i] + dh * og * (1.0f - tc * tc);
        float c_prev = t > 0 ? cells[(row - 1) * h + j] : (p.carry ? c0[i] : 0.0f);
        g[j] = dc * gg * ig * (1.0f - ig);
        g[h + j] = dc * c_prev * fg * (1.0f - fg);
        g[2 * h + j] = dc * ig * (1.0f - gg * gg);
        g[3 * h + j] = dh * tc * og * (1.0f - og);
        dcell[i] = dc * fg;
    }
}

// dh[b, t-1] += dG[b, t] U^T: one thread a (sample, unit of step t-1).
extern "C" __global__ void lstm_dh_bwd_f32(RecurrentParams p, u32 t, const float* u,
                                           const float* dgates, float* dhidden) {
    u32 h = p.units;
    u64 w = 4ull * h;
    KILN_FOR(i, (u64)p.batch * h) {
        u64 b = i / h;
        u64 q = i - b * h;
        u64 row = b * p.time + t;
        const float* dg = dgates + row * w;
        const float* uq = u + q * w;
        float acc = 0.0f;
        for (u64 k = 0; k < w; ++k) {
            acc += dg[k] * uq[k];
        }
        dhidden[(row - 1) * h + q] += acc;
    }
}

// dU += h[:, t-1]^T dG[:, t] (h0 before the first step, with `carry`): one thread
// a kernel value, summing over the batch.
extern "C" __global__ void lstm_du_bwd_f32(RecurrentParams p, u32 t, const float* hidden,
                                           const float* h0, const float* dgates, float* du) {
    u32 h = p.units;
    u64 w = 4ull * h;
    KILN_FOR(i, (u64)h * w) {
        u64 q = i / w;
        u64 k = i - q * w;
        float acc = 0.0f;
        for (u64 b = 0; b < p.batch; ++b) {
            u64 row = b * p.time + t;
            float prev = t > 0 ? hidden[(row - 1) * h + q] : h0[b * h + q];
            acc += prev * dgates[row * w + k];
        }
        du[i] += acc;
    }
}
