// The matrix product in every layout, and the three convolution kernels, against
// direct loops in double precision, each in every tile it is compiled for.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "cuda/gemm.cuh"
#include "ops/matmul/matmul.cu"
#include "ops/conv2d/conv2d.cu"

#include <tuple>

// A kernel compiled for each tile, with the tile's size.
template <class K>
struct Tiled {
    const char* tile;
    unsigned rows;
    unsigned cols;
    K kernel;
};

using MatmulKernel = decltype(&matmul_fwd_f32_128x128);
#define MATMUL_ENTRY(BM, BN, TM, TN, BLOCKS) \
    Tiled<MatmulKernel>{#BM "x" #BN, BM, BN, matmul_fwd_f32_##BM##x##BN},
static const Tiled<MatmulKernel> MATMUL[] = {GEMM_TILES(MATMUL_ENTRY)};

#define CONV_ENTRY(BM, BN, TM, TN, BLOCKS)                                         \
    ConvTile{#BM "x" #BN, BM, BN, conv2d_fwd_f32_##BM##x##BN,                        \
             conv2d_weight_bwd_f32_##BM##x##BN, conv2d_input_bwd_f32_##BM##x##BN},
struct ConvTile {
    const char* tile;
    unsigned rows;
    unsigned cols;
    decltype(&conv2d_fwd_f32_128x128) fwd;
    decltype(&conv2d_weight_bwd_f32_128x128) weight;
    decltype(&conv2d_input_bwd_f32_128x128) input;
};
static const ConvTile CONV[] = {GEMM_TILES(CONV_ENTRY)};

static void matmul() {
    for (auto [m, n, k] : std::vector<std::tuple<unsigned, unsigned, unsigned>>{
             {1, 1, 1}, {65, 63, 17}, {70, 130, 40}, {131, 33, 9}})
        for (int ta = 0; ta < 2; ++ta)
            for (int tb = 0; tb < 2; ++tb)
                for (int acc = 0; acc < 2; ++acc) {
                    auto a = random_values(m * k), b = random_values(k * n);
                    auto c0 = random_values(m * n);
                    std::vector<float> want = c0;
                    for (unsigned i = 0; i < m; ++i)
                        for (unsigned j = 0; j < n; ++j) {
                            double s = 0;
                            for (unsigned q = 0; q < k; ++q)
                                s += (double)(ta ? a[q * m + i] : a[i * k + q]) *
                                     (tb ? b[j * k + q] : b[q * n + j]);
                            want[i * n + j] = float((acc ? c0[i * n + j] : 0.0) + s);
                        }
                    MatmulParams p{m, n, k, (bool)ta, (bool)tb, (bool)acc};
                    // K whole, then split in slices of 8 (as the launch code splits: C
                    // zeroed first unless the product adds to it).
                    for (const auto& t : MATMUL)
                        for (unsigned chunk : {k, 8u}) {
                            unsigned splits = (k + chunk - 1) / chunk;
                            auto c = c0;
                            if (splits > 1 && !acc) std::fill(c.begin(), c.end(), 0.0f);
                            dim3 grid{(m + t.rows - 1) / t.rows, (n + t.cols - 1) / t.cols, splits};
                            launch(grid, dim3{256, 1, 1}, t.kernel, p, (const float*)a.data(),
                                   (const float*)b.data(), c.data(), chunk);
                            char what[120];
                            std::snprintf(what, sizeof what,
                                          "matmul %s %ux%ux%u trans %d %d accumulate %d, %u slices",
                                          t.tile, m, n, k, ta, tb, acc, splits);
                            expect_close(what, want, c, 1e-4f);
                        }
                }
}

static void conv2d() {
    // batch, in h, w, c, filters, kernel h, w, stride h, w, pad top, left, bottom,
    // dilation h; the last two are 1-D convolutions (width 1, time as the height),
    // causal (all padding on top) and dilated with a stride.
    for (auto g : std::vector<std::vector<unsigned>>{{2, 5, 6, 3, 4, 3, 3, 1, 1, 0, 0, 0, 1},
                                                    {2, 7, 6, 3, 4, 3, 3, 2, 2, 1, 1, 1, 1},
                                                    {3, 9, 9, 1, 5, 4, 4, 3, 2, 1, 1, 1, 1},
                                                    {2, 6, 5, 70, 3, 3, 1, 1, 1, 1, 0, 1, 1},
                                                    {2, 13, 1, 5, 6, 3, 1, 1, 1, 4, 0, 0, 2},
                                                    {3, 17, 1, 3, 4, 4, 1, 2, 1, 3, 0, 3, 3}}) {
        unsigned B = g[0], IH = g[1], IW = g[2], IC = g[3], OC = g[4], KH = g[5], KW = g[6];
        unsigned SH = g[7], SW = g[8], PT = g[9], PL = g[10], PB = g[11], DH = g[12];
        unsigned OH = (IH + PT + PB - (DH * (KH - 1) + 1)) / SH + 1, OW = (IW + 2 * PL - KW) / SW + 1;
        Conv2dParams p{B, IH, IW, IC, OH, OW, OC, KH, KW, SH, SW, PT, PL, DH, ACT_RELU, 0.0f};
        auto x = random_values(B * IH * IW * IC), w = random_values(KH * KW * IC * OC);
        auto bias = random_values(OC), dy = random_values(B * OH * OW * OC);
        auto dx0 = random_values(x.size());
        std::vector<float> want_y(dy.size()), want_dw(w.size(), 1.0f), want_dx(x.size(), 0.0f);
        for (unsigned n = 0; n < B; ++n)
            for (unsigned oy = 0; oy < OH; ++oy)
                for (unsigned ox = 0; ox < OW; ++ox)
                    for (unsigned f = 0; f < OC; ++f) {
                        size_t o = ((n * OH + oy) * OW + ox) * OC + f;
                        double s = bias[f];
                        for (unsigned ky = 0; ky < KH; ++ky)
                            for (unsigned kx = 0; kx < KW; ++kx) {
                                int yy = int(oy * SH + ky * DH) - int(PT), xx = int(ox * SW + kx) - int(PL);
                                if (yy < 0 || yy >= int(IH) || xx < 0 || xx >= int(IW)) continue;
                                for (unsigned c = 0; c < IC; ++c) {
                                    size_t xi = ((n * IH + yy) * IW + xx) * IC + c;
                                    size_t wi = ((ky * KW + kx) * IC + c) * OC + f;
                                    s += (double)x[xi] * w[wi];
                                    want_dw[wi] += (double)x[xi] * dy[o];
                                    want_dx[xi] += (double)w[wi] * dy[o];
                                }
                            }
                        want_y[o] = s < 0 ? 0.0f : float(s);
                    }
        unsigned rows = B * OH * OW, patch = KH * KW * IC, pixels = B * IH * IW;
        auto blocks = [](unsigned n, unsigned tile) { return (n + tile - 1) / tile; };
        for (const auto& t : CONV) {
            std::vector<float> y(want_y.size()), dw(w.size(), 1.0f), dx(x.size(), 5.0f);
            char what[120];
            // The forward with K (the patch) whole, then in slices of 8 that add into a
            // zeroed output, the bias and ReLU after, as the launch code splits it.
            for (unsigned chunk : {patch, 8u}) {
                unsigned splits = blocks(patch, chunk);
                std::fill(y.begin(), y.end(), splits > 1 ? 0.0f : 9.0f);
                launch(dim3{blocks(rows, t.rows), blocks(OC, t.cols), splits}, dim3{256, 1, 1}, t.fwd, p,
                       (const float*)x.data(), (const float*)w.data(), (const float*)bias.data(), y.data(),
                       chunk);
                if (splits > 1)
                    for (size_t i = 0; i < y.size(); ++i) y[i] = std::max(0.0f, y[i] + bias[i % OC]);
                std::snprintf(what, sizeof what, "conv2d %s forward %ux%ux%u, %u slices", t.tile, IH, IW, IC,
                              splits);
                expect_close(what, want_y, y, 1e-4f);
            }
            // Short K slices, one not a multiple of the slice depth, so that several blocks
            // add into each weight gradient value and slices end inside a block's K range.
            unsigned chunk = min(11u, rows), splits = blocks(rows, chunk);
            launch(dim3{blocks(patch, t.rows), blocks(OC, t.cols), splits}, dim3{256, 1, 1}, t.weight, p,
                   (const float*)x.data(), (const float*)dy.data(), dw.data(), chunk);
            std::snprintf(what, sizeof what, "conv2d %s weight gradient %ux%ux%u", t.tile, IH, IW, IC);
            expect_close(what, want_dw, dw, 1e-4f);
            // The input gradient with K (taps x filters) whole, then in slices of 8 that
            // add into a zeroed gradient, as the launch code splits it; then both added
            // to what the gradient holds (a residual block's shortcut's gradient), which
            // the launch code never zeroes.
            unsigned inner = KH * KW * OC;
            for (int acc = 0; acc < 2; ++acc)
                for (unsigned chunk : {inner, 8u}) {
                    unsigned splits = blocks(inner, chunk);
                    std::vector<float> want = want_dx;
                    if (acc) {
                        dx = dx0;
                        for (size_t i = 0; i < want.size(); ++i) want[i] += dx0[i];
                    } else {
                        std::fill(dx.begin(), dx.end(), splits > 1 ? 0.0f : 5.0f);
                    }
                    launch(dim3{blocks(pixels, t.rows), blocks(IC, t.cols), splits}, dim3{256, 1, 1},
                           t.input, p, (const float*)dy.data(), (const float*)w.data(), dx.data(), (bool)acc,
                           chunk);
                    std::snprintf(what, sizeof what,
                                  "conv2d %s input gradient %ux%ux%u, %u slices, accumulate %d", t.tile, IH,
                                  IW, IC, splits, acc);
                    expect_close(what, want, dx, 1e-4f);
                }
        }
    }
}

int main() {
    matmul();
    conv2d();
    return failures();
}
