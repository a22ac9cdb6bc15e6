// The concatenation's forward and backward (the gradient written and added) against
// direct loops; grids smaller than the work, so that the grid-stride loops go round.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/concat/concat.cu"

#include <string>

static void concat() {
    struct Case {
        unsigned rows;
        std::vector<unsigned> widths;
    };
    for (const Case& c : std::vector<Case>{{1, {1, 7, 29}}, {3, {1, 7, 29}}, {40, {16, 3, 13}}, {5, {8}}}) {
        unsigned total = 0;
        for (unsigned w : c.widths) total += w;
        std::vector<float> y(c.rows * total, 7.5f), want = y;
        auto dy = random_values(c.rows * total);
        unsigned offset = 0;
        for (unsigned w : c.widths) {
            ConcatParams p{c.rows, w, total, offset};
            unsigned n = c.rows * w;
            auto x = random_values(n), before = random_values(n);
            std::vector<float> written(n), added = before;
            for (unsigned r = 0; r < c.rows; ++r)
                for (unsigned k = 0; k < w; ++k) {
                    want[r * total + offset + k] = x[r * w + k];
                    written[r * w + k] = dy[r * total + offset + k];
                    added[r * w + k] += dy[r * total + offset + k];
                }
            std::string what = "concat " + std::to_string(c.rows) + " rows, width " +
                               std::to_string(w) + " at " + std::to_string(offset);
            launch(dim3{2, 1, 1}, dim3{32, 1, 1}, concat_fwd_f32, p, (const float*)x.data(), y.data());
            expect_close((what + " forward").c_str(), want, y, 0.0f);
            std::vector<float> dx(n, 7.5f);
            launch(dim3{blocks_for(n), 1, 1}, dim3{256, 1, 1}, concat_bwd_f32, p, (const float*)dy.data(),
                   dx.data(), 0u);
            expect_close((what + " gradient written").c_str(), written, dx, 0.0f);
            dx = before;
            launch(dim3{1, 1, 1}, dim3{32, 1, 1}, concat_bwd_f32, p, (const float*)dy.data(), dx.data(), 1u);
            expect_close((what + " gradient added").c_str(), added, dx, 0.0f);
            offset += w;
        }
    }
}

int main() {
    concat();
    return failures();
}
