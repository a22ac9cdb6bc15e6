// One Adam step against its formula in double precision, and no step at all while an
// error waits in the status words.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/optimizer/optimizer.cu"

int main() {
    unsigned n = 1000;
    auto w = random_values(n), g = random_values(n);
    std::vector<float> state(2 * n, 0.0f), w0 = w, want(n);
    double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    OptimizerParams p{ADAM, n, 0, 1.0f, INFINITY, 0.0f, 1.0f, float(lr), float(b1), float(b2),
                      float(1 - b1), float(1 - b2), float(eps), 0.0f, float(std::sqrt(1 - b2)),
                      float(-lr / (1 - b1)), 0.0f};
    std::vector<unsigned long long> status(STATUS_WORDS, 0);
    status[STATUS_NON_FINITE] = 1;
    launch(dim3{4, 1, 1}, dim3{256, 1, 1}, optimizer_fwd_f32, p, w.data(), (const float*)g.data(), state.data(),
           (const unsigned long long*)status.data());
    expect("no update while an error is pending", w == w0 && state == std::vector<float>(2 * n, 0.0f));
    status[STATUS_NON_FINITE] = 0;
    launch(dim3{4, 1, 1}, dim3{256, 1, 1}, optimizer_fwd_f32, p, w.data(), (const float*)g.data(), state.data(),
           (const unsigned long long*)status.data());
    for (unsigned i = 0; i < n; ++i) {
        double m = (1 - b1) * g[i], v = (1 - b2) * g[i] * g[i];
        want[i] = float(w0[i] - lr / (1 - b1) * m / (std::sqrt(v) / std::sqrt(1 - b2) + eps));
    }
    expect_close("adam step", want, w, 1e-6f);
    return failures();
}
