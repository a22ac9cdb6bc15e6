// Pooling against the CPU backend's scatter (first maximum takes the gradient, every
// other cell of the window adds 0 * g), bit for bit, with ties and padding.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/pool2d/pool2d.cu"

int main() {
    // batch, in h = w, channels, window, stride, padding (top = left)
    for (auto g : std::vector<std::vector<unsigned>>{
             {2, 8, 3, 2, 2, 0}, {3, 7, 5, 3, 2, 1}, {2, 6, 7, 3, 1, 0}, {2, 5, 2, 5, 5, 0}})
        for (unsigned kind : {unsigned(POOL_MAX), unsigned(POOL_AVG)}) {
            unsigned B = g[0], H = g[1], C = g[2], S = g[3], ST = g[4], P = g[5];
            unsigned O = P ? (H + ST - 1) / ST : (H - S) / ST + 1;
            Pool2dParams p{B, H, H, C, O, O, S, S, ST, ST, P, P, kind};
            auto x = random_values(B * H * H * C, 2.0f);
            for (auto& v : x) v = std::max(0.0f, std::round(v * 2.0f));  // ties, as after a ReLU
            auto dy = random_values(B * O * O * C);
            std::vector<float> want_y(dy.size()), want_dx(x.size(), 0.0f);
            for (unsigned n = 0; n < B; ++n)
                for (unsigned oy = 0; oy < O; ++oy)
                    for (unsigned ox = 0; ox < O; ++ox) {
                        int y0 = int(oy * ST) - int(P), x0 = int(ox * ST) - int(P);
                        int y1 = std::min(y0 + int(S), int(H)), x1 = std::min(x0 + int(S), int(H));
                        y0 = std::max(y0, 0);
                        x0 = std::max(x0, 0);
                        float inv = 1.0f / float(std::max((y1 - y0) * (x1 - x0), 1));
                        for (unsigned c = 0; c < C; ++c) {
                            size_t o = ((n * O + oy) * O + ox) * C + c;
                            float acc = kind == POOL_MAX ? -INFINITY : 0.0f;
                            for (int yy = y0; yy < y1; ++yy)
                                for (int xx = x0; xx < x1; ++xx) {
                                    float v = x[((n * H + yy) * H + xx) * C + c];
                                    acc = kind == POOL_MAX ? (v > acc ? v : acc) : acc + v;
                                }
                            if (kind == POOL_AVG) acc *= inv;
                            want_y[o] = acc;
                            float open = 1.0f;
                            for (int yy = y0; yy < y1; ++yy)
                                for (int xx = x0; xx < x1; ++xx) {
                                    size_t at = ((n * H + yy) * H + xx) * C + c;
                                    if (kind == POOL_MAX) {
                                        float hit = x[at] == acc ? open : 0.0f;
                                        want_dx[at] += hit * dy[o];
                                        open -= hit;
                                    } else {
                                        want_dx[at] += dy[o] * inv;
                                    }
                                }
                        }
                    }
            std::vector<float> y(want_y.size()), dx(x.size(), 7.0f);
            launch(dim3{blocks_for(y.size()), 1, 1}, dim3{256, 1, 1}, pool2d_fwd_f32, p, (const float*)x.data(),
                   y.data());
            launch(dim3{blocks_for(x.size()), 1, 1}, dim3{256, 1, 1}, pool2d_bwd_f32, p, (const float*)x.data(),
                   (const float*)y.data(), (const float*)dy.data(), dx.data());
            expect_close(kind == POOL_MAX ? "max pool forward" : "average pool forward", want_y, y, 0.0f);
            expect_close(kind == POOL_MAX ? "max pool backward" : "average pool backward", want_dx, dx, 0.0f);
        }
    return failures();
}
