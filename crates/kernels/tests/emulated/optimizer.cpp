// One Adam step (a group of one tensor) against its formula in double precision, no
// step at all while an error waits in the status words, and a group of three tensors
// in one launch against each as a group of its own.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/optimizer/optimizer.cu"

// `count` tensors in one group.
static OptimizerGroup group_of(unsigned count, const OptimizerParams* p, float** w, const float** g,
                               float** s) {
    OptimizerGroup group{};
    group.count = count;
    for (unsigned t = 0; t < count; ++t) {
        group.p[t] = p[t];
        group.param[t] = w[t];
        group.grad[t] = g[t];
        group.state[t] = s[t];
    }
    return group;
}

int main() {
    unsigned n = 1000;
    auto w = random_values(n), g = random_values(n);
    std::vector<float> state(2 * n, 0.0f), w0 = w, want(n);
    double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    OptimizerParams p{ADAM, n, 0, 1.0f, INFINITY, 0.0f, 1.0f, float(lr), float(b1), float(b2),
                      float(1 - b1), float(1 - b2), float(eps), 0.0f, float(std::sqrt(1 - b2)),
                      float(-lr / (1 - b1)), 0.0f};
    float* wp = w.data();
    const float* gp = g.data();
    float* sp = state.data();
    OptimizerGroup one = group_of(1, &p, &wp, &gp, &sp);
    std::vector<unsigned long long> status(STATUS_WORDS, 0);
    const unsigned long long* words = status.data();
    status[STATUS_NON_FINITE] = 1;
    launch(dim3{4, 1, 1}, dim3{256, 1, 1}, optimizer_group_fwd_f32, one, words);
    expect("no update while an error is pending", w == w0 && state == std::vector<float>(2 * n, 0.0f));
    status[STATUS_NON_FINITE] = 0;
    launch(dim3{4, 1, 1}, dim3{256, 1, 1}, optimizer_group_fwd_f32, one, words);
    for (unsigned i = 0; i < n; ++i) {
        double m = (1 - b1) * g[i], v = (1 - b2) * g[i] * g[i];
        want[i] = float(w0[i] - lr / (1 - b1) * m / (std::sqrt(v) / std::sqrt(1 - b2) + eps));
    }
    expect_close("adam step", want, w, 1e-6f);

    // Three tensors of different lengths and rules: together (tensor t in block row t,
    // a spare row beyond them) against each alone.
    unsigned lens[3] = {700, 3, 300};
    std::vector<std::vector<float>> ws, gs, ss;
    OptimizerParams qs[3];
    for (int t = 0; t < 3; ++t) {
        ws.push_back(random_values(lens[t]));
        gs.push_back(random_values(lens[t]));
        ss.push_back(std::vector<float>(2 * lens[t], 0.5f));
        qs[t] = p;
        qs[t].len = lens[t];
        qs[t].kind = t == 1 ? SGD : ADAM;
        qs[t].momentum = 0.5f;
        qs[t].lr = 0.01f * (t + 1);
    }
    auto alone_w = ws, alone_s = ss;
    float *wt[3], *st[3];
    const float* gt[3];
    for (int t = 0; t < 3; ++t) {
        float* aw = alone_w[t].data();
        float* as = alone_s[t].data();
        const float* ag = gs[t].data();
        launch(dim3{2, 1, 1}, dim3{256, 1, 1}, optimizer_group_fwd_f32, group_of(1, &qs[t], &aw, &ag, &as),
               words);
        wt[t] = ws[t].data();
        gt[t] = gs[t].data();
        st[t] = ss[t].data();
    }
    launch(dim3{2, 4, 1}, dim3{256, 1, 1}, optimizer_group_fwd_f32, group_of(3, qs, wt, gt, st), words);
    for (int t = 0; t < 3; ++t) {
        expect_close("group update, values", alone_w[t], ws[t], 0.0f);
        expect_close("group update, state", alone_s[t], ss[t], 0.0f);
    }
    return failures();
}
