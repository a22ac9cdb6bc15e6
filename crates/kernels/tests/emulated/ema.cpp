// The moving average against torch.lerp written out, on both sides of its switch at a
// weight of one half (grids smaller than the work, so that the grid-stride loop goes
// round), no update while an error waits in the status words, and a group of three
// tensors in one launch against each as a group of its own.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/ema/ema.cu"

// `count` tensors in one group.
static EmaGroup group_of(unsigned count, const EmaParams* p, float** average, const float** value) {
    EmaGroup group{};
    group.count = count;
    for (unsigned t = 0; t < count; ++t) {
        group.p[t] = p[t];
        group.average[t] = average[t];
        group.value[t] = value[t];
    }
    return group;
}

static float direct(float a, float b, float w) {
    return w < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

int main() {
    std::vector<unsigned long long> status(STATUS_WORDS, 0);
    const unsigned long long* words = status.data();
    for (unsigned n : {1u, 255u, 257u, 3000u}) {
        for (double decay : {0.999, 0.9, 0.5, 0.1}) {
            auto average = random_values(n), value = random_values(n, 2.0f);
            EmaParams p{n, float(1.0 - decay)};
            std::vector<float> want(n);
            for (unsigned i = 0; i < n; ++i) want[i] = direct(average[i], value[i], p.weight);
            want.push_back(7.0f);
            average.push_back(7.0f);  // past the end: left alone
            float* a = average.data();
            const float* v = value.data();
            launch(dim3{2, 1, 1}, dim3{256, 1, 1}, ema_group_fwd_f32, group_of(1, &p, &a, &v), words);
            expect_close(p.weight < 0.5f ? "ema, weight below one half" : "ema, weight from one half",
                         want, average, 0.0f);
        }
    }

    unsigned n = 1000;
    auto average = random_values(n), value = random_values(n), before = average;
    EmaParams p{n, 0.25f};
    float* a = average.data();
    const float* v = value.data();
    status[STATUS_NON_FINITE] = 1;
    launch(dim3{4, 1, 1}, dim3{256, 1, 1}, ema_group_fwd_f32, group_of(1, &p, &a, &v), words);
    expect("no update while an error is pending", average == before);
    status[STATUS_NON_FINITE] = 0;

    // Three tensors of different lengths and weights: together (tensor t in block row
    // t, a spare row beyond them) against each alone.
    unsigned lens[3] = {700, 3, 300};
    float weights[3] = {0.001f, 0.5f, 0.9f};
    std::vector<std::vector<float>> as, vs;
    EmaParams ps[3];
    for (int t = 0; t < 3; ++t) {
        as.push_back(random_values(lens[t]));
        vs.push_back(random_values(lens[t]));
        ps[t] = EmaParams{lens[t], weights[t]};
    }
    auto alone = as;
    float* at[3];
    const float* vt[3];
    for (int t = 0; t < 3; ++t) {
        float* aa = alone[t].data();
        const float* av = vs[t].data();
        launch(dim3{2, 1, 1}, dim3{256, 1, 1}, ema_group_fwd_f32, group_of(1, &ps[t], &aa, &av), words);
        at[t] = as[t].data();
        vt[t] = vs[t].data();
    }
    launch(dim3{2, 4, 1}, dim3{256, 1, 1}, ema_group_fwd_f32, group_of(3, ps, at, vt), words);
    for (int t = 0; t < 3; ++t) expect_close("group average", alone[t], as[t], 0.0f);
    return failures();
}
