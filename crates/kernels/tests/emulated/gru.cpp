// The GRU's (both forms) and the simple RNN's time loops, step by step as the host
// launches them: the forward pass against direct loops in double, and the backward
// pass (the gates', recurrent kernel's and biases' gradients of sum(y * dy)) against
// central differences of those loops; from zero states and from carried ones.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/recurrent/recurrent.cu"

#include <cmath>

static double sig(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Which cell: a GRU with or without reset_after, or the simple RNN.
enum Cell { GRU_AFTER, GRU_BEFORE, RNN };

static unsigned gates_of(Cell cell) { return cell == RNN ? 1 : 3; }

// sum(y * dy) from projections `proj` (no bias), recurrent kernel `u`, bias `bias`
// (a GRU's, or the RNN's, added to the projection) and initial state `h0`;
// `h_out` gets every step's hidden state.
static double reference(Cell cell, const RecurrentParams& p, const std::vector<double>& proj,
                        const std::vector<double>& u, const std::vector<double>& bias,
                        const std::vector<float>& dy, const std::vector<float>& h0,
                        std::vector<double>* h_out) {
    unsigned B = p.batch, T = p.time, H = p.units, W = gates_of(cell) * H;
    std::vector<double> h(B * T * H);
    for (unsigned b = 0; b < B; ++b)
        for (unsigned t = 0; t < T; ++t) {
            unsigned row = b * T + t;
            auto prev = [&](unsigned q) { return t > 0 ? h[(row - 1) * H + q] : double(h0[b * H + q]); };
            // Every gate's recurrent part first: step t reads step t-1 only.
            std::vector<double> rec(W, 0.0);
            for (unsigned k = 0; k < W; ++k)
                for (unsigned q = 0; q < H; ++q) rec[k] += prev(q) * u[q * W + k];
            for (unsigned j = 0; j < H; ++j) {
                const double* x = &proj[row * W];
                if (cell == RNN) {
                    h[row * H + j] = std::tanh(x[j] + bias[j] + rec[j]);
                    continue;
                }
                double rb[3] = {0, 0, 0};
                if (cell == GRU_AFTER)
                    for (unsigned k = 0; k < 3; ++k) rb[k] = bias[W + k * H + j];
                double z = sig(x[j] + bias[j] + rec[j] + rb[0]);
                double c;
                if (cell == GRU_AFTER) {
                    double r = sig(x[H + j] + bias[H + j] + rec[H + j] + rb[1]);
                    c = std::tanh(x[2 * H + j] + bias[2 * H + j] + r * (rec[2 * H + j] + rb[2]));
                } else {
                    double s = 0.0;
                    for (unsigned q = 0; q < H; ++q) {
                        double rq = sig(x[H + q] + bias[H + q] + rec[H + q]);
                        s += rq * prev(q) * u[q * W + 2 * H + j];
                    }
                    c = std::tanh(x[2 * H + j] + bias[2 * H + j] + s);
                }
                h[row * H + j] = z * prev(j) + (1 - z) * c;
            }
        }
    double loss = 0.0;
    for (unsigned b = 0; b < B; ++b)
        for (unsigned t = 0; t < T; ++t)
            for (unsigned j = 0; j < H; ++j) {
                unsigned row = b * T + t;
                if (p.return_sequences) loss += h[row * H + j] * dy[row * H + j];
                else if (t + 1 == T) loss += h[row * H + j] * dy[b * H + j];
            }
    if (h_out) *h_out = h;
    return loss;
}

// Central differences of the reference in each value of `v`.
template <class F>
static std::vector<float> differences(std::vector<double>& v, F loss) {
    const double e = 1e-5;
    std::vector<float> fd(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
        double x = v[i];
        v[i] = x + e;
        double plus = loss();
        v[i] = x - e;
        double minus = loss();
        v[i] = x;
        fd[i] = float((plus - minus) / (2 * e));
    }
    return fd;
}

static void check(Cell cell, unsigned return_sequences, unsigned carry) {
    const unsigned B = 2, T = 4, H = 3, W = gates_of(cell) * H;
    const char* name = cell == GRU_AFTER ? "gru (reset_after)" : cell == GRU_BEFORE ? "gru" : "rnn";
    RecurrentParams p{B, T, H, return_sequences, carry};
    unsigned bias_len = cell == GRU_AFTER ? 2 * W : W;
    std::vector<float> proj = random_values(B * T * W), u = random_values(H * W, 0.8f),
                       bias = random_values(bias_len, 0.5f);
    unsigned out = return_sequences ? B * T * H : B * H;
    std::vector<float> dy = random_values(out);
    // A previous call's states, for `carry`.
    std::vector<float> cells = random_values(B * T * H), hidden = random_values(B * T * H), y(out),
                       dh(B * T * H), du(H * W, 0.0f), db(bias_len, 0.0f), h0(B * H, 0.0f),
                       c0(B * H, 0.0f);
    if (carry)
        launch(dim3{1, 1, 1}, dim3{4, 1, 1}, lstm_carry_fwd_f32, p, (const float*)cells.data(),
               (const float*)hidden.data(), c0.data(), h0.data());
    // The RNN's bias is added before the loop, as the layer's bias op does.
    std::vector<float> gates = proj;
    if (cell == RNN)
        for (size_t i = 0; i < gates.size(); ++i) gates[i] += bias[i % W];
    for (unsigned t = 0; t < T; ++t) {
        if (cell == RNN) {
            launch(dim3{1, 1, 1}, dim3{4, 1, 1}, rnn_fwd_f32, p, t, (const float*)u.data(),
                   gates.data(), hidden.data(), (const float*)h0.data(), y.data());
            continue;
        }
        if (cell == GRU_BEFORE)
            launch(dim3{1, 1, 1}, dim3{4, 1, 1}, gru_reset_fwd_f32, p, t, (const float*)u.data(),
                   (const float*)bias.data(), gates.data(), cells.data(), (const float*)hidden.data(),
                   (const float*)h0.data());
        launch(dim3{1, 1, 1}, dim3{4, 1, 1}, gru_fwd_f32, p, t, u32(cell == GRU_AFTER),
               (const float*)u.data(), (const float*)bias.data(), gates.data(), cells.data(),
               hidden.data(), (const float*)h0.data(), y.data());
    }
    std::vector<double> pd(proj.begin(), proj.end()), ud(u.begin(), u.end()),
        bd(bias.begin(), bias.end()), h;
    reference(cell, p, pd, ud, bd, dy, h0, &h);
    std::string what = std::string(name) + (carry ? ", carried" : "") +
                       (return_sequences ? ", sequences" : ", last step");
    expect_close((what + ": hidden states").c_str(), std::vector<float>(h.begin(), h.end()), hidden, 1e-5f);

    launch(dim3{2, 1, 1}, dim3{8, 1, 1}, lstm_dy_bwd_f32, p, (const float*)dy.data(), dh.data());
    u32 after = cell == GRU_AFTER;
    for (unsigned t = T; t-- > 0;) {
        if (cell == RNN) {
            launch(dim3{1, 1, 1}, dim3{4, 1, 1}, rnn_bwd_f32, p, t, gates.data(), (const float*)dh.data());
            if (t == 0) break;
            launch(dim3{1, 1, 1}, dim3{4, 1, 1}, rnn_dh_bwd_f32, p, t, (const float*)u.data(),
                   (const float*)gates.data(), dh.data());
            continue;
        }
        launch(dim3{1, 1, 1}, dim3{4, 1, 1}, gru_bwd_f32, p, t, after, gates.data(), cells.data(),
               (const float*)hidden.data(), (const float*)h0.data(), dh.data());
        if (!after)
            launch(dim3{1, 1, 1}, dim3{4, 1, 1}, gru_reset_bwd_f32, p, t, (const float*)u.data(),
                   gates.data(), (const float*)hidden.data(), (const float*)h0.data(), dh.data());
        if (t == 0) break;
        launch(dim3{1, 1, 1}, dim3{4, 1, 1}, gru_dh_bwd_f32, p, t, after, (const float*)u.data(),
               (const float*)gates.data(), (const float*)cells.data(), dh.data());
    }
    if (cell == RNN) {
        launch(dim3{2, 1, 1}, dim3{8, 1, 1}, rnn_du_bwd_f32, p, (const float*)hidden.data(),
               (const float*)h0.data(), (const float*)gates.data(), du.data());
        // The bias's gradient is the gates' column sums, which the layer's bias op takes.
        for (size_t i = 0; i < gates.size(); ++i) db[i % W] += gates[i];
    } else {
        launch(dim3{2, 1, 1}, dim3{8, 1, 1}, gru_du_bwd_f32, p, after, (const float*)hidden.data(),
               (const float*)h0.data(), (const float*)gates.data(), (const float*)cells.data(), du.data());
        launch(dim3{1, 1, 1}, dim3{8, 1, 1}, gru_db_bwd_f32, p, after, (const float*)gates.data(),
               (const float*)cells.data(), db.data());
    }
    auto loss = [&] { return reference(cell, p, pd, ud, bd, dy, h0, nullptr); };
    expect_close((what + ": gates' gradient").c_str(), differences(pd, loss), gates, 1e-4f);
    expect_close((what + ": recurrent kernel's gradient").c_str(), differences(ud, loss), du, 1e-4f);
    expect_close((what + ": bias's gradient").c_str(), differences(bd, loss), db, 1e-4f);
}

// A sequence's steps reversed, written and then added.
static void check_reverse() {
    const unsigned B = 2, T = 5, W = 3;
    RecurrentParams p{B, T, W, 1, 0};
    std::vector<float> x = random_values(B * T * W), y(B * T * W, 0.0f), want(B * T * W);
    for (unsigned b = 0; b < B; ++b)
        for (unsigned t = 0; t < T; ++t)
            for (unsigned k = 0; k < W; ++k) want[(b * T + t) * W + k] = x[(b * T + T - 1 - t) * W + k];
    launch(dim3{2, 1, 1}, dim3{8, 1, 1}, reverse_time_fwd_f32, p, u32(0), (const float*)x.data(), y.data());
    expect_close("reverse time", want, y, 0.0f);
    launch(dim3{2, 1, 1}, dim3{8, 1, 1}, reverse_time_fwd_f32, p, u32(1), (const float*)x.data(), y.data());
    for (auto& v : want) v *= 2.0f;
    expect_close("reverse time, added", want, y, 0.0f);
}

int main() {
    check_reverse();
    for (Cell cell : {GRU_AFTER, GRU_BEFORE, RNN})
        for (unsigned carry = 0; carry < 2; ++carry) {
            check(cell, 1, carry);
            check(cell, 0, carry);
        }
    return failures();
}
