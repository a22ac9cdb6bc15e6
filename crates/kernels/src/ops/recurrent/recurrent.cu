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

// The GRU's time loop. Gates come in blocks z, r, c (update, reset, candidate) of
// `units` each; `bias` is the input bias [3 units], followed with `reset_after` by
// the recurrent bias [3 units]; `aux` (the workspace's cells) keeps each step's
// candidate recurrent part `h[t-1] U_c + b'_c` (reset_after) or reset state
// `r h[t-1]` (without), which the backward pass reads.

// The hidden state before step t of sample b, unit q: zero at the first step unless
// carried.
__device__ inline float kiln_prev_state(const RecurrentParams& p, u32 t, u64 b, u64 row,
                                        u64 q, const float* hidden, const float* h0) {
    if (t > 0) return hidden[(row - 1) * p.units + q];
    return p.carry ? h0[b * p.units + q] : 0.0f;
}

// Without reset_after, step t's first half: the update and reset gates, and the
// reset state whose product the candidate needs.
extern "C" __global__ void gru_reset_fwd_f32(RecurrentParams p, u32 t, const float* u,
                                             const float* bias, float* gates, float* aux,
                                             const float* hidden, const float* h0) {
    u32 h = p.units;
    u64 w = 3ull * h;
    KILN_FOR(i, (u64)p.batch * h) {
        u64 b = i / h;
        u64 j = i - b * h;
        u64 row = b * p.time + t;
        float* g = gates + row * w;
        float pz = g[j] + bias[j], pr = g[h + j] + bias[h + j];
        if (t > 0 || p.carry) {
            for (u32 q = 0; q < h; ++q) {
                float hq = kiln_prev_state(p, t, b, row, q, hidden, h0);
                pz += hq * u[q * w + j];
                pr += hq * u[q * w + h + j];
            }
        }
        float z = kiln_sigmoid(pz), r = kiln_sigmoid(pr);
        g[j] = z;
        g[h + j] = r;
        aux[row * h + j] = r * kiln_prev_state(p, t, b, row, j, hidden, h0);
    }
}

// Step t: with reset_after every gate; without, the candidate after
// gru_reset_fwd_f32. Then the hidden state and the output.
extern "C" __global__ void gru_fwd_f32(RecurrentParams p, u32 t, u32 reset_after,
                                       const float* u, const float* bias, float* gates,
                                       float* aux, float* hidden, const float* h0,
                                       float* y) {
    u32 h = p.units;
    u64 w = 3ull * h;
    KILN_FOR(i, (u64)p.batch * h) {
        u64 b = i / h;
        u64 j = i - b * h;
        u64 row = b * p.time + t;
        float* g = gates + row * w;
        bool has_prev = t > 0 || p.carry;
        float z, c;
        if (reset_after) {
            const float* rb = bias + w;
            float pz = g[j] + bias[j] + rb[j];
            float pr = g[h + j] + bias[h + j] + rb[h + j];
            float a = rb[2 * h + j];
            if (has_prev) {
                for (u32 q = 0; q < h; ++q) {
                    float hq = kiln_prev_state(p, t, b, row, q, hidden, h0);
                    const float* uq = u + q * w + j;
                    pz += hq * uq[0];
                    pr += hq * uq[h];
                    a += hq * uq[2 * h];
                }
            }
            z = kiln_sigmoid(pz);
            float r = kiln_sigmoid(pr);
            aux[row * h + j] = a;
            c = tanhf(g[2 * h + j] + bias[2 * h + j] + r * a);
            g[j] = z;
            g[h + j] = r;
        } else {
            z = g[j];
            float pc = g[2 * h + j] + bias[2 * h + j];
            if (has_prev) {
                const float* s = aux + row * h;
                for (u32 q = 0; q < h; ++q) pc += s[q] * u[q * w + 2 * h + j];
            }
            c = tanhf(pc);
        }
        g[2 * h + j] = c;
        float hv = z * kiln_prev_state(p, t, b, row, j, hidden, h0) + (1.0f - z) * c;
        hidden[row * h + j] = hv;
        if (p.return_sequences) {
            y[row * h + j] = hv;
        } else if (t + 1 == p.time) {
            y[b * h + j] = hv;
        }
    }
}

// Step t back: the update and candidate gates' gradients (and with reset_after the
// reset gate's, and in `aux` the gradient at the candidate's recurrent part), and
// the direct path z * dh into step t-1.
extern "C" __global__ void gru_bwd_f32(RecurrentParams p, u32 t, u32 reset_after,
                                       float* gates, float* aux, const float* hidden,
                                       const float* h0, float* dhidden) {
    u32 h = p.units;
    u64 w = 3ull * h;
    KILN_FOR(i, (u64)p.batch * h) {
        u64 b = i / h;
        u64 j = i - b * h;
        u64 row = b * p.time + t;
        float* g = gates + row * w;
        float z = g[j], r = g[h + j], c = g[2 * h + j];
        float dh = dhidden[row * h + j];
        float hp = kiln_prev_state(p, t, b, row, j, hidden, h0);
        float dc = dh * (1.0f - z) * (1.0f - c * c);
        g[j] = dh * (hp - c) * z * (1.0f - z);
        g[2 * h + j] = dc;
        if (reset_after) {
            g[h + j] = dc * aux[row * h + j] * r * (1.0f - r);
            aux[row * h + j] = dc * r;
        }
        if (t > 0) dhidden[(row - 1) * h + j] += dh * z;
    }
}

// Without reset_after, step t back: the reset state's gradient dC U_c^T gives the
// reset gate's and a path into step t-1.
extern "C" __global__ void gru_reset_bwd_f32(RecurrentParams p, u32 t, const float* u,
                                             float* gates, const float* hidden,
                                             const float* h0, float* dhidden) {
    u32 h = p.units;
    u64 w = 3ull * h;
    KILN_FOR(i, (u64)p.batch * h) {
        u64 b = i / h;
        u64 j = i - b * h;
        u64 row = b * p.time + t;
        float* g = gates + row * w;
        const float* uj = u + j * w + 2 * h;
        float ds = 0.0f;
        for (u32 k = 0; k < h; ++k) ds += g[2 * h + k] * uj[k];
        float r = g[h + j];
        g[h + j] = ds * kiln_prev_state(p, t, b, row, j, hidden, h0) * r * (1.0f - r);
        if (t > 0) dhidden[(row - 1) * h + j] += ds * r;
    }
}

// dh[b, t-1] += dG[b, t, z r] U_zr^T (+ dA[b, t] U_c^T with reset_after).
extern "C" __global__ void gru_dh_bwd_f32(RecurrentParams p, u32 t, u32 reset_after,
                                          const float* u, const float* dgates,
                                          const float* daux, float* dhidden) {
    u32 h = p.units;
    u64 w = 3ull * h;
    KILN_FOR(i, (u64)p.batch * h) {
        u64 b = i / h;
        u64 q = i - b * h;
        u64 row = b * p.time + t;
        const float* dg = dgates + row * w;
        const float* uq = u + q * w;
        float acc = 0.0f;
        for (u64 k = 0; k < 2ull * h; ++k) acc += dg[k] * uq[k];
        if (reset_after) {
            const float* da = daux + row * h;
            for (u64 k = 0; k < h; ++k) acc += da[k] * uq[2 * h + k];
        }
        dhidden[(row - 1) * h + q] += acc;
    }
}

// dU over every step at once: column k of the update and reset blocks sums
// h[t-1] dG; the candidate's, h[t-1] dA (reset_after) or (r h[t-1]) dG.
extern "C" __global__ void gru_du_bwd_f32(RecurrentParams p, u32 reset_after,
                                          const float* hidden, const float* h0,
                                          const float* dgates, const float* aux,
                                          float* du) {
    u32 h = p.units;
    u64 w = 3ull * h;
    KILN_FOR(i, (u64)h * w) {
        u64 q = i / w;
        u64 k = i - q * w;
        float acc = 0.0f;
        for (u64 b = 0; b < p.batch; ++b) {
            for (u32 t = 0; t < p.time; ++t) {
                u64 row = b * p.time + t;
                float a, g;
                if (k < 2ull * h) {
                    a = kiln_prev_state(p, t, b, row, q, hidden, h0);
                    g = dgates[row * w + k];
                } else if (reset_after) {
                    a = kiln_prev_state(p, t, b, row, q, hidden, h0);
                    g = aux[row * h + k - 2 * h];
                } else {
                    a = aux[row * h + q];
                    g = dgates[row * w + k];
                }
                acc += a * g;
            }
        }
        du[i] += acc;
    }
}

// The biases' gradients: the input bias sums the gates' gradients; the recurrent
// bias (reset_after) those of z and r and, for the candidate, dA.
extern "C" __global__ void gru_db_bwd_f32(RecurrentParams p, u32 reset_after,
                                          const float* dgates, const float* daux,
                                          float* dbias) {
    u32 h = p.units;
    u64 w = 3ull * h;
    u64 rows = (u64)p.batch * p.time;
    KILN_FOR(k, reset_after ? 2 * w : w) {
        float acc = 0.0f;
        for (u64 row = 0; row < rows; ++row) {
            if (k < w) acc += dgates[row * w + k];
            else if (k < w + 2ull * h) acc += dgates[row * w + k - w];
            else acc += daux[row * h + k - w - 2 * h];
        }
        dbias[k] += acc;
    }
}

// The simple RNN, h[t] = tanh(x W + b + h[t-1] U): step t forward.
extern "C" __global__ void rnn_fwd_f32(RecurrentParams p, u32 t, const float* u,
                                       float* gates, float* hidden, const float* h0,
                                       float* y) {
    u32 h = p.units;
    KILN_FOR(i, (u64)p.batch * h) {
        u64 b = i / h;
        u64 j = i - b * h;
        u64 row = b * p.time + t;
        float pre = gates[row * h + j];
        if (t > 0 || p.carry) {
            for (u32 q = 0; q < h; ++q) pre += kiln_prev_state(p, t, b, row, q, hidden, h0) * u[q * h + j];
        }
        float hv = tanhf(pre);
        gates[row * h + j] = hv;
        hidden[row * h + j] = hv;
        if (p.return_sequences) {
            y[row * h + j] = hv;
        } else if (t + 1 == p.time) {
            y[b * h + j] = hv;
        }
    }
}

// Step t back: the pre-activation's gradient, then into step t-1 through U.
extern "C" __global__ void rnn_bwd_f32(RecurrentParams p, u32 t, float* gates,
                                       const float* dhidden) {
    u32 h = p.units;
    KILN_FOR(i, (u64)p.batch * h) {
        u64 row = (i / h) * p.time + t;
        u64 j = i % h;
        float v = gates[row * h + j];
        gates[row * h + j] = dhidden[row * h + j] * (1.0f - v * v);
    }
}

extern "C" __global__ void rnn_dh_bwd_f32(RecurrentParams p, u32 t, const float* u,
                                          const float* dgates, float* dhidden) {
    u32 h = p.units;
    KILN_FOR(i, (u64)p.batch * h) {
        u64 b = i / h;
        u64 q = i - b * h;
        u64 row = b * p.time + t;
        float acc = 0.0f;
        for (u32 k = 0; k < h; ++k) acc += dgates[row * h + k] * u[q * h + k];
        dhidden[(row - 1) * h + q] += acc;
    }
}

// dU over every step at once.
extern "C" __global__ void rnn_du_bwd_f32(RecurrentParams p, const float* hidden,
                                          const float* h0, const float* dgates, float* du) {
    u32 h = p.units;
    KILN_FOR(i, (u64)h * h) {
        u64 q = i / h;
        u64 k = i - q * h;
        float acc = 0.0f;
        for (u64 b = 0; b < p.batch; ++b) {
            for (u32 t = 0; t < p.time; ++t) {
                u64 row = b * p.time + t;
                acc += kiln_prev_state(p, t, b, row, q, hidden, h0) * dgates[row * h + k];
            }
        }
        du[i] += acc;
    }
}

// y[b, time-1-t, :] = x[b, t, :] (added with `accumulate`); `units` is a step's width.
extern "C" __global__ void reverse_time_fwd_f32(RecurrentParams p, u32 accumulate,
                                                const float* x, float* y) {
    u64 w = p.units;
    KILN_FOR(i, (u64)p.batch * p.time * w) {
        u64 row = i / w;
        u64 k = i - row * w;
        u64 b = row / p.time;
        u64 t = row - b * p.time;
        float v = x[(b * p.time + p.time - 1 - t) * w + k];
        y[i] = accumulate ? y[i] + v : v;
    }
}
