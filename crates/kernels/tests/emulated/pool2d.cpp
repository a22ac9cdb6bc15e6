// Pooling against the CPU backend's scatter (the first maximum takes the gradient, the
// window's other cells get +0, and through a ReLU a window whose maximum is not
// positive passes none), bit for bit, with ties and padding: each backward kernel that
// applies, with 32-bit and with 64-bit indices.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/pool2d/pool2d.cu"

// The 64-bit paths, which the kernels take only past 2^32 values.
__global__ void forward_u64(Pool2dParams p, const float* x, float* y) {
    KILN_FOR(i, (u64)p.batch * p.out_h * p.out_w * p.channels) forward_at<u64>(p, x, y, i);
}
__global__ void tiled_backward_u64(Pool2dParams p, const float* x, const float* y, const float* dy,
                                   float* dx, u32 relu) {
    KILN_FOR(i, (u64)p.batch * p.out_h * p.out_w * p.channels)
    tiled_backward_at<u64>(p, x, y, dy, dx, relu, i);
}
__global__ void backward_u64(Pool2dParams p, const float* x, const float* y, const float* dy,
                             float* dx, u32 relu) {
    KILN_FOR(i, (u64)p.batch * p.in_h * p.in_w * p.channels) backward_at<u64>(p, x, y, dy, dx, relu, i);
}

using Backward = decltype(&pool2d_bwd_f32);

int main() {
    // batch, in h = w, channels, window, stride, padding (top = left)
    for (auto g : std::vector<std::vector<unsigned>>{{2, 8, 3, 2, 2, 0},
                                                     {3, 9, 4, 2, 2, 0},
                                                     {2, 7, 2, 3, 3, 0},
                                                     {3, 7, 5, 3, 2, 1},
                                                     {2, 6, 7, 3, 1, 0},
                                                     {2, 5, 2, 5, 5, 0}})
        for (unsigned kind : {unsigned(POOL_MAX), unsigned(POOL_AVG)})
            for (unsigned relu = 0; relu < (kind == POOL_MAX ? 2u : 1u); ++relu) {
                unsigned B = g[0], H = g[1], C = g[2], S = g[3], ST = g[4], P = g[5];
                unsigned O = P ? (H + ST - 1) / ST : (H - S) / ST + 1;
                Pool2dParams p{B, H, H, C, O, O, S, S, ST, ST, P, P, kind};
                auto x = random_values(B * H * H * C, 2.0f);
                // Ties and zeros, as after a ReLU; some windows all negative.
                for (auto& v : x) v = std::round(v * 2.0f) - 1.0f;
                auto dy = random_values(B * O * O * C);
                dy[1] = INFINITY;  // the window's other cells still get 0, not 0 * inf
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
                                bool open = !relu || acc > 0.0f;
                                for (int yy = y0; yy < y1; ++yy)
                                    for (int xx = x0; xx < x1; ++xx) {
                                        size_t at = ((n * H + yy) * H + xx) * C + c;
                                        if (kind == POOL_MAX) {
                                            bool hit = open && x[at] == acc;
                                            if (hit) want_dx[at] += dy[o];
                                            open = open && !hit;
                                        } else {
                                            want_dx[at] += dy[o] * inv;
                                        }
                                    }
                            }
                        }
                const char* name = kind == POOL_AVG ? "average pool" : relu ? "max pool through a ReLU" : "max pool";
                for (auto fwd : {pool2d_fwd_f32, forward_u64}) {
                    std::vector<float> y(want_y.size(), NAN);
                    launch(dim3{blocks_for(y.size()), 1, 1}, dim3{256, 1, 1}, fwd, p, (const float*)x.data(),
                           y.data());
                    expect_close(name, want_y, y, 0.0f);
                }
                std::vector<std::pair<Backward, size_t>> backward{{pool2d_bwd_f32, x.size()},
                                                                  {backward_u64, x.size()}};
                if (kind == POOL_MAX && S == ST && P == 0) {
                    backward.push_back({pool2d_tiled_bwd_f32, want_y.size()});
                    backward.push_back({tiled_backward_u64, want_y.size()});
                }
                for (auto [bwd, threads] : backward) {
                    std::vector<float> dx(x.size(), NAN);
                    // Few blocks, so that the grid-stride loops go round.
                    launch(dim3{std::min(blocks_for(threads), 2u), 1, 1}, dim3{64, 1, 1}, bwd, p,
                           (const float*)x.data(), (const float*)want_y.data(), (const float*)dy.data(),
                           dx.data(), relu);
                    expect_close(name, want_dx, dx, 0.0f);
                    // +0, not -0, where no gradient arrives: bit for bit as on the CPU.
                    bool signs = true;
                    for (size_t i = 0; i < dx.size(); ++i) signs = signs && std::signbit(dx[i]) == std::signbit(want_dx[i]);
                    expect("the zeros' signs", signs);
                }
            }
    return failures();
}
