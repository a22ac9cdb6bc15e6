// The LSTM's time loop, step by step as the host launches it: the forward pass against
// direct loops in double, and the backward pass (gates' and recurrent kernel's
// gradients of sum(y * dy)) against central differences of those loops; from zero
// states and from states carried over from a previous call.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/recurrent/recurrent.cu"

#include <cmath>

static double sig(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// sum(y * dy) of an LSTM from projections `proj` and recurrent kernel `u`; `h_out`
// gets every step's hidden state.
static double reference(const RecurrentParams& p, const std::vector<double>& proj,
                        const std::vector<double>& u, const std::vector<float>& dy,
                        const std::vector<float>& h0, const std::vector<float>& c0,
                        std::vector<double>* h_out) {
    unsigned B = p.batch, T = p.time, H = p.units, W = 4 * H;
    std::vector<double> h(B * T * H), c(B * T * H);
    for (unsigned b = 0; b < B; ++b)
        for (unsigned t = 0; t < T; ++t) {
            unsigned row = b * T + t;
            for (unsigned j = 0; j < H; ++j) {
                double g[4];
                for (unsigned k = 0; k < 4; ++k) {
                    g[k] = proj[row * W + k * H + j];
                    for (unsigned q = 0; q < H; ++q) {
                        double prev = t > 0 ? h[(row - 1) * H + q] : h0[b * H + q];
                        g[k] += prev * u[q * W + k * H + j];
                    }
                }
                double cp = t > 0 ? c[(row - 1) * H + j] : c0[b * H + j];
                c[row * H + j] = sig(g[1]) * cp + sig(g[0]) * std::tanh(g[2]);
                h[row * H + j] = sig(g[3]) * std::tanh(c[row * H + j]);
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

static void check(unsigned return_sequences, unsigned carry) {
    const unsigned B = 2, T = 4, H = 3, W = 4 * H;
    RecurrentParams p{B, T, H, return_sequences, carry};
    std::vector<float> proj = random_values(B * T * W), u = random_values(H * W, 0.8f);
    unsigned out = return_sequences ? B * T * H : B * H;
    std::vector<float> dy = random_values(out);
    // A previous call's states, for `carry`.
    std::vector<float> gates = proj, cells = random_values(B * T * H), hidden = random_values(B * T * H),
                       y(out), dh(B * T * H), dc(B * H, 0.0f), du(H * W, 0.0f), h0(B * H, 0.0f),
                       c0(B * H, 0.0f);
    if (carry) {
        launch(dim3{1, 1, 1}, dim3{4, 1, 1}, lstm_carry_fwd_f32, p, (const float*)cells.data(),
               (const float*)hidden.data(), c0.data(), h0.data());
        std::vector<float> want_h0(B * H), want_c0(B * H);
        for (unsigned b = 0; b < B; ++b)
            for (unsigned j = 0; j < H; ++j) {
                want_h0[b * H + j] = hidden[(b * T + T - 1) * H + j];
                want_c0[b * H + j] = cells[(b * T + T - 1) * H + j];
            }
        expect_close("lstm carry: h0", want_h0, h0, 0.0f);
        expect_close("lstm carry: c0", want_c0, c0, 0.0f);
    }
    for (unsigned t = 0; t < T; ++t)
        launch(dim3{1, 1, 1}, dim3{4, 1, 1}, lstm_fwd_f32, p, t, (const float*)u.data(),
               gates.data(), cells.data(), hidden.data(), (const float*)c0.data(),
               (const float*)h0.data(), y.data());
    std::vector<double> pd(proj.begin(), proj.end()), ud(u.begin(), u.end()), h;
    reference(p, pd, ud, dy, h0, c0, &h);
    expect_close("lstm forward: hidden states", std::vector<float>(h.begin(), h.end()), hidden, 1e-5f);

    launch(dim3{2, 1, 1}, dim3{8, 1, 1}, lstm_dy_bwd_f32, p, (const float*)dy.data(), dh.data());
    for (unsigned t = T; t-- > 0;) {
        launch(dim3{1, 1, 1}, dim3{4, 1, 1}, lstm_bwd_f32, p, t, gates.data(),
               (const float*)cells.data(), (const float*)c0.data(), (const float*)dh.data(), dc.data());
        if (t > 0 || carry)
            launch(dim3{2, 1, 1}, dim3{8, 1, 1}, lstm_du_bwd_f32, p, t, (const float*)hidden.data(),
                   (const float*)h0.data(), (const float*)gates.data(), du.data());
        if (t == 0) break;
        launch(dim3{1, 1, 1}, dim3{4, 1, 1}, lstm_dh_bwd_f32, p, t, (const float*)u.data(),
               (const float*)gates.data(), dh.data());
    }
    const double e = 1e-5;
    std::vector<float> fd_proj(pd.size()), fd_u(ud.size());
    for (size_t i = 0; i < pd.size(); ++i) {
        double v = pd[i];
        pd[i] = v + e;
        double plus = reference(p, pd, ud, dy, h0, c0, nullptr);
        pd[i] = v - e;
        double minus = reference(p, pd, ud, dy, h0, c0, nullptr);
        pd[i] = v;
        fd_proj[i] = float((plus - minus) / (2 * e));
    }
    for (size_t i = 0; i < ud.size(); ++i) {
        double v = ud[i];
        ud[i] = v + e;
        double plus = reference(p, pd, ud, dy, h0, c0, nullptr);
        ud[i] = v - e;
        double minus = reference(p, pd, ud, dy, h0, c0, nullptr);
        ud[i] = v;
        fd_u[i] = float((plus - minus) / (2 * e));
    }
    expect_close("lstm backward: gates' gradient", fd_proj, gates, 1e-4f);
    expect_close("lstm backward: recurrent kernel's gradient", fd_u, du, 1e-4f);
}

int main() {
    for (unsigned carry = 0; carry < 2; ++carry) {
        check(1, carry);
        check(0, carry);
    }
    return failures();
}
