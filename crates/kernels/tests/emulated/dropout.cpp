// The dropout mask against `rng::uniform_at`: the Rust test passes the seed, the rate
// and the CPU's uniform numbers for the first elements as arguments.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/dropout/dropout.cu"

#include <cstdlib>

int main(int argc, char** argv) {
    if (argc < 4) return 2;
    u64 seed = std::strtoull(argv[1], nullptr, 10);
    float rate = std::strtof(argv[2], nullptr);
    unsigned n = unsigned(argc - 3);
    std::vector<float> uniform(n), want(n), x(n, 3.0f), y(n), dx(n);
    for (unsigned i = 0; i < n; ++i) uniform[i] = std::strtof(argv[3 + i], nullptr);
    for (unsigned i = 0; i < n; ++i) want[i] = uniform[i] >= rate ? 3.0f * (1.0f / (1.0f - rate)) : 0.0f;
    std::vector<float> got(n);
    for (unsigned i = 0; i < n; ++i) got[i] = uniform_at(seed, i);
    expect_close("uniform_at", uniform, got, 0.0f);
    DropoutParams p{n, rate, seed};
    launch(dim3{1, 1, 1}, dim3{64, 1, 1}, dropout_fwd_f32, p, (const float*)x.data(), y.data());
    expect_close("dropout forward", want, y, 0.0f);
    launch(dim3{2, 1, 1}, dim3{32, 1, 1}, dropout_bwd_f32, p, (const float*)x.data(), dx.data());
    expect_close("dropout backward", want, dx, 0.0f);
    return failures();
}
