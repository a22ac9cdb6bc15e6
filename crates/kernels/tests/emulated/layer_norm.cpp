// Layer normalisation's kernels against direct loops in double: the forward with its
// statistics, the input gradient written and added, and the parameters' gradients
// added to what is there, on grids smaller than the rows and blocks narrower than
// the columns.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/layer_norm/layer_norm.cu"

#include <string>

static std::vector<float> narrow(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

static void layer_norm(unsigned rows, unsigned cols, unsigned blocks, unsigned threads) {
    std::string what = std::to_string(rows) + "x" + std::to_string(cols) + ": ";
    size_t n = (size_t)rows * cols;
    const float eps = 1e-5f;
    auto x = random_values(n, 2.0f), gamma = random_values(cols, 1.5f), beta = random_values(cols);
    auto dy = random_values(n);
    for (auto& v : x) v += 1.0f;
    std::vector<double> y(n), mean(rows), rstd(rows), dx(n), dgamma(cols, 0.25), dbeta(cols, -0.5);
    for (unsigned r = 0; r < rows; ++r) {
        double s = 0.0, v = 0.0;
        for (unsigned c = 0; c < cols; ++c) s += x[r * cols + c];
        mean[r] = s / cols;
        for (unsigned c = 0; c < cols; ++c) v += (x[r * cols + c] - mean[r]) * (x[r * cols + c] - mean[r]);
        rstd[r] = 1.0 / std::sqrt(v / cols + eps);
        double mg = 0.0, mgx = 0.0;
        for (unsigned c = 0; c < cols; ++c) {
            size_t i = (size_t)r * cols + c;
            double xhat = (x[i] - mean[r]) * rstd[r];
            y[i] = xhat * gamma[c] + beta[c];
            mg += dy[i] * gamma[c] / cols;
            mgx += dy[i] * gamma[c] * xhat / cols;
            dgamma[c] += dy[i] * xhat;
            dbeta[c] += dy[i];
        }
        for (unsigned c = 0; c < cols; ++c) {
            size_t i = (size_t)r * cols + c;
            double xhat = (x[i] - mean[r]) * rstd[r];
            dx[i] = rstd[r] * (dy[i] * gamma[c] - mg - xhat * mgx);
        }
    }
    LayerNormParams p{rows, cols, eps, 0};
    std::vector<float> got_y(n), stats(2 * rows);
    launch(dim3{blocks, 1, 1}, dim3{threads, 1, 1}, layer_norm_fwd_f32, p, (const float*)x.data(),
           (const float*)gamma.data(), (const float*)beta.data(), got_y.data(), stats.data());
    expect_close((what + "output").c_str(), narrow(y), got_y, 1e-5f);
    std::vector<double> want_stats(mean);
    want_stats.insert(want_stats.end(), rstd.begin(), rstd.end());
    expect_close((what + "means and reciprocal deviations").c_str(), narrow(want_stats), stats, 1e-5f);

    std::vector<float> got_dx(n, 9.0f);
    launch(dim3{blocks, 1, 1}, dim3{threads, 1, 1}, layer_norm_bwd_f32, p, (const float*)x.data(),
           (const float*)gamma.data(), (const float*)stats.data(), (const float*)dy.data(), got_dx.data());
    expect_close((what + "input gradient, written").c_str(), narrow(dx), got_dx, 1e-4f);
    p.accumulate = 1;
    std::vector<float> added(n, 0.5f);
    launch(dim3{blocks, 1, 1}, dim3{threads, 1, 1}, layer_norm_bwd_f32, p, (const float*)x.data(),
           (const float*)gamma.data(), (const float*)stats.data(), (const float*)dy.data(), added.data());
    std::vector<double> want_added(dx);
    for (auto& v : want_added) v += 0.5;
    expect_close((what + "input gradient, added").c_str(), narrow(want_added), added, 1e-4f);

    std::vector<float> got_dgamma(cols, 0.25f), got_dbeta(cols, -0.5f);
    launch(dim3{blocks_for(cols), 1, 1}, dim3{64, 1, 1}, layer_norm_params_bwd_f32, p,
           (const float*)x.data(), (const float*)stats.data(), (const float*)dy.data(), got_dgamma.data(),
           got_dbeta.data());
    expect_close((what + "gamma's gradient, added").c_str(), narrow(dgamma), got_dgamma, 1e-4f);
    expect_close((what + "beta's gradient, added").c_str(), narrow(dbeta), got_dbeta, 1e-4f);
}

int main() {
    layer_norm(7, 128, 3, 64);   // a grid smaller than the rows, a block narrower than a row
    layer_norm(5, 13, 8, 32);    // more blocks than rows, a ragged row
    layer_norm(1, 300, 1, 128);
    return failures();
}
