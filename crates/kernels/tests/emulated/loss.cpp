// Losses against their formulas, and the status words for a non-finite output and an
// invalid label.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/loss/loss.cu"

int main() {
    unsigned B = 5, F = 4;
    auto o = random_values(B * F, 2.0f), t = random_values(B * F);
    std::vector<float> labels{0, 3, 1, 2, 1}, w{1, 2, 0.5f, 1, 1}, per(B), g(B * F), want_per(B), want_g(B * F);
    std::vector<unsigned long long> status(STATUS_WORDS, 0);
    LossParams sparse{SPARSE_CCE, LOGITS, B, F, 1, 0.0f, 1.0f, 1e-7f, 1.0f / B};
    launch(dim3{1, 1, 1}, dim3{256, 1, 1}, loss_fwd_f32, sparse, (const float*)o.data(),
           (const float*)labels.data(), (const float*)w.data(), per.data(), g.data(), status.data());
    for (unsigned i = 0; i < B; ++i) {
        double m = -INFINITY, s = 0;
        for (unsigned c = 0; c < F; ++c) m = std::max<double>(m, o[i * F + c]);
        for (unsigned c = 0; c < F; ++c) s += std::exp(o[i * F + c] - m);
        double lse = m + std::log(s);
        unsigned label = unsigned(labels[i]);
        want_per[i] = float((lse - o[i * F + label]) * w[i]);
        for (unsigned c = 0; c < F; ++c)
            want_g[i * F + c] = float((std::exp(o[i * F + c] - lse) - (c == label)) * w[i] / B);
    }
    expect_close("sparse categorical cross-entropy values", want_per, per, 1e-5f);
    expect_close("sparse categorical cross-entropy gradient", want_g, g, 1e-5f);

    LossParams mse{MSE, PREDICTION, B, F, 0, 0.0f, 1.0f, 1e-7f, 1.0f / B};
    launch(dim3{1, 1, 1}, dim3{256, 1, 1}, loss_fwd_f32, mse, (const float*)o.data(), (const float*)t.data(),
           (const float*)o.data(), per.data(), g.data(), status.data());
    for (unsigned i = 0; i < B; ++i) {
        double s = 0;
        for (unsigned c = 0; c < F; ++c) {
            double d = o[i * F + c] - t[i * F + c];
            s += d * d;
            want_g[i * F + c] = float(2 * d / F / B);
        }
        want_per[i] = float(s / F);
    }
    expect_close("mean squared error values", want_per, per, 1e-5f);
    expect_close("mean squared error gradient", want_g, g, 1e-5f);

    o[13] = NAN;
    o[6] = INFINITY;
    labels[4] = 7;
    launch(dim3{1, 1, 1}, dim3{256, 1, 1}, loss_fwd_f32, sparse, (const float*)o.data(),
           (const float*)labels.data(), (const float*)w.data(), per.data(), g.data(), status.data());
    expect("the first non-finite output is reported", reported(status[STATUS_NON_FINITE_OUTPUT], 6, INFINITY));
    expect("the first invalid label is reported", reported(status[STATUS_INVALID_TARGET], 4, 7.0f));
    return failures();
}
