// One Adam step against its formula in double precision, no step at all while an
// error waits in the status words, and a group of tensors in one launch against each
// alone.
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

    // Three tensors of different lengths and rules: the group kernel (tensor t in block
    // row t) against the single one.
    unsigned lens[3] = {700, 3, 300};
    OptimizerGroup group{};
    std::vector<std::vector<float>> ws, gs, ss, alone_w, alone_s;
    for (int t = 0; t < 3; ++t) {
        ws.push_back(random_values(lens[t]));
        gs.push_back(random_values(lens[t]));
        ss.push_back(std::vector<float>(2 * lens[t], 0.5f));
    }
    alone_w = ws;
    alone_s = ss;
    for (int t = 0; t < 3; ++t) {
        OptimizerParams q = p;
        q.len = lens[t];
        q.kind = t == 1 ? SGD : ADAM;
        q.momentum = 0.5f;
        q.lr = 0.01f * (t + 1);
        launch(dim3{2, 1, 1}, dim3{256, 1, 1}, optimizer_fwd_f32, q, alone_w[t].data(), (const float*)gs[t].data(),
               alone_s[t].data(), (const unsigned long long*)status.data());
        group.p[t] = q;
        group.param[t] = ws[t].data();
        group.grad[t] = gs[t].data();
        group.state[t] = ss[t].data();
    }
    group.count = 3;
    launch(dim3{2, 4, 1}, dim3{256, 1, 1}, optimizer_group_fwd_f32, group, (const unsigned long long*)status.data());
    for (int t = 0; t < 3; ++t) {
        expect_close("group update, values", alone_w[t], ws[t], 0.0f);
        expect_close("group update, state", alone_s[t], ss[t], 0.0f);
    }
    return failures();
}
