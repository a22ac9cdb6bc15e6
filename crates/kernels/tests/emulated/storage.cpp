// The storage kernel: a group of fills in one launch (one buffer is a group of one),
// which must set the first `len` values of each buffer and nothing past them.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "cuda/storage.cu"

int main() {
    std::vector<std::vector<float>> buffers{std::vector<float>(700, -1.0f), std::vector<float>(5, -1.0f),
                                            std::vector<float>(300, -1.0f)};
    unsigned long long lens[3] = {700, 4, 299};
    FillGroup g{};
    g.count = 3;
    g.value = 0.0f;
    for (int t = 0; t < 3; ++t) {
        g.len[t] = lens[t];
        g.y[t] = buffers[t].data();
    }
    launch(dim3{2, 4, 1}, dim3{256, 1, 1}, fill_group_fwd_f32, g);
    for (int t = 0; t < 3; ++t) {
        std::vector<float> w(buffers[t].size(), 0.0f);
        for (size_t i = lens[t]; i < w.size(); ++i) w[i] = -1.0f;
        expect_close("group fill", w, buffers[t], 0.0f);
    }
    return failures();
}
