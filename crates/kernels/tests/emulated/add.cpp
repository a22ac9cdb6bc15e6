// The sum with its activation, in place and out of place, against direct loops; grids
// smaller than the work, so that the grid-stride loop goes round.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/add/add.cu"

#include <string>

// act(v) written out: exact for the piecewise-linear kinds, in double otherwise.
static float direct(u32 kind, float slope, float v) {
    switch (kind) {
        case ACT_RELU: return v > 0.0f ? v : 0.0f;
        case ACT_LEAKY_RELU: return v < 0.0f ? slope * v : v;
        case ACT_SIGMOID: return float(1.0 / (1.0 + std::exp(-double(v))));
        case ACT_TANH: return float(std::tanh(double(v)));
        default: return v;
    }
}

static void add() {
    const char* names[] = {"linear", "relu", "leaky relu", "sigmoid", "tanh"};
    for (unsigned n : {1u, 7u, 255u, 257u, 1000u}) {
        auto a = random_values(n, 3.0f), b = random_values(n, 3.0f);
        for (u32 kind : {ACT_LINEAR, ACT_RELU, ACT_LEAKY_RELU, ACT_SIGMOID, ACT_TANH}) {
            AddParams p{n, kind, 0.25f};
            std::vector<float> want(n), y(n + 1, 7.0f);
            for (unsigned i = 0; i < n; ++i) want[i] = direct(kind, 0.25f, a[i] + b[i]);
            want.push_back(7.0f);
            bool smooth = kind == ACT_SIGMOID || kind == ACT_TANH;
            float tol = smooth ? 1e-6f : 0.0f;
            std::string what = "add " + std::to_string(n) + " " + names[kind];
            launch(dim3{blocks_for(n) > 1 ? 2u : 1u, 1, 1}, dim3{128, 1, 1}, add_fwd_f32, p,
                   (const float*)a.data(), (const float*)b.data(), y.data());
            expect_close(what.c_str(), want, y, tol);
            // In place: `b` is `y`.
            std::vector<float> z = b;
            z.push_back(7.0f);
            launch(dim3{1, 1, 1}, dim3{64, 1, 1}, add_fwd_f32, p, (const float*)a.data(),
                   (const float*)z.data(), z.data());
            expect_close((what + " in place").c_str(), want, z, tol);
        }
    }
}

int main() {
    add();
    return failures();
}
