// Batch normalisation's kernels against direct loops in double: the partial sums in one
// band and in several, the statistics and the running update, the element-wise maps on
// grids smaller than the work (threads a multiple of the channels, as the launch code
// makes them), and the backward after a training and an inference forward, written and
// added.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/batch_norm/batch_norm.cu"

#include <numeric>
#include <string>

static double act(u32 kind, double slope, double v) {
    switch (kind) {
        case ACT_RELU: return v > 0.0 ? v : 0.0;
        case ACT_LEAKY_RELU: return v < 0.0 ? slope * v : v;
        case ACT_SIGMOID: return 1.0 / (1.0 + std::exp(-v));
        case ACT_TANH: return std::tanh(v);
        default: return v;
    }
}

static std::vector<float> narrow(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

// Blocks of `threads` for the element-wise kernels: at least `want`, and threads in all
// a multiple of the channels.
static unsigned elementwise_blocks(unsigned channels, unsigned threads, unsigned want) {
    unsigned unit = channels / std::gcd(channels, threads);
    return (want + unit - 1) / unit * unit;
}

static void batch_norm(unsigned rows, unsigned C, unsigned bands, u32 kind, bool unbiased) {
    const char* names[] = {"linear", "relu", "leaky relu", "sigmoid", "tanh"};
    std::string what = std::to_string(rows) + "x" + std::to_string(C) + " " + names[kind] +
                       (unbiased ? " unbiased" : "") + ": ";
    size_t n = (size_t)rows * C;
    BatchNormParams p{rows, C, 1e-3f, 0.9f, unbiased, kind, 0.1f};
    auto x = random_values(n, 2.0f), gamma = random_values(C, 1.5f), beta = random_values(C);
    for (auto& v : x) v += 3.0f;
    auto running = random_values(C);
    for (float v : random_values(C)) running.push_back(1.25f + v);
    auto dy = random_values(n);

    // Direct loops.
    std::vector<double> mean(C, 0.0), var(C, 0.0), saved(2 * C), moved(2 * C), y(n), eval_y(n);
    for (size_t i = 0; i < n; ++i) mean[i % C] += x[i];
    for (auto& m : mean) m /= rows;
    for (size_t i = 0; i < n; ++i) var[i % C] += (x[i] - mean[i % C]) * (x[i] - mean[i % C]);
    for (auto& v : var) v /= rows;
    double correction = unbiased ? double(rows) / (rows - 1) : 1.0, m = (double)0.9f;
    for (unsigned c = 0; c < C; ++c) {
        saved[c] = mean[c];
        saved[C + c] = 1.0 / std::sqrt(var[c] + (double)1e-3f);
        moved[c] = m * running[c] + (1 - m) * mean[c];
        moved[C + c] = m * running[C + c] + (1 - m) * var[c] * correction;
    }
    for (size_t i = 0; i < n; ++i) {
        unsigned c = i % C;
        y[i] = act(kind, 0.1, gamma[c] * (x[i] - mean[c]) * saved[C + c] + beta[c]);
        double invstd = 1.0 / std::sqrt((double)running[C + c] + (double)1e-3f);
        eval_y[i] = act(kind, 0.1, gamma[c] * (x[i] - running[c]) * invstd + beta[c]);
    }
    std::vector<double> dgamma(C, 0.5), dbeta(C, 0.5), sum_dy(C, 0.0), sum_dy_xhat(C, 0.0);
    for (size_t i = 0; i < n; ++i) {
        unsigned c = i % C;
        sum_dy[c] += dy[i];
        sum_dy_xhat[c] += dy[i] * (x[i] - mean[c]) * saved[C + c];
    }
    for (unsigned c = 0; c < C; ++c) {
        dgamma[c] += sum_dy_xhat[c];
        dbeta[c] += sum_dy[c];
    }
    std::vector<double> dx(n), eval_dx(n);
    for (size_t i = 0; i < n; ++i) {
        unsigned c = i % C;
        double invstd = saved[C + c], xhat = (x[i] - mean[c]) * invstd;
        dx[i] = gamma[c] * invstd / rows * (rows * dy[i] - sum_dy[c] - xhat * sum_dy_xhat[c]);
    }

    // Training forward.
    dim3 sums{(C + 31) / 32, bands, 1}, totals{(C + 31) / 32, 1, 1}, block{32, BN_ROWS, 1};
    dim3 elementwise{elementwise_blocks(C, 64, 2), 1, 1}, threads{64, 1, 1};
    std::vector<float> ws(4 * C + 4 * C * bands, NAN), s(2 * C, NAN), out(n, NAN);
    std::vector<float> run_mean(running.begin(), running.begin() + C);
    std::vector<float> run_var(running.begin() + C, running.end());
    launch(sums, block, batch_norm_partials_fwd_f32, p, (const float*)x.data(), ws.data());
    launch(totals, block, batch_norm_stats_fwd_f32, p, bands, (const float*)x.data(),
           run_mean.data(), run_var.data(), s.data(), ws.data());
    expect_close((what + "mean and invstd").c_str(), narrow(saved), s, 1e-6f);
    std::vector<float> run = run_mean;
    run.insert(run.end(), run_var.begin(), run_var.end());
    expect_close((what + "running statistics").c_str(), narrow(moved), run, 1e-6f);
    launch(elementwise, threads, batch_norm_fwd_f32, p, (const float*)x.data(),
           (const float*)gamma.data(), (const float*)beta.data(), (const float*)s.data(),
           out.data());
    expect_close((what + "training forward").c_str(), narrow(y), out, 2e-5f);

    // Backward after it, the input gradient written, then added.
    std::vector<float> dg(C, 0.5f), db(C, 0.5f), g(n, NAN);
    launch(sums, block, batch_norm_partials_bwd_f32, p, (const float*)x.data(),
           (const float*)dy.data(), (const float*)s.data(), ws.data());
    launch(totals, block, batch_norm_grads_bwd_f32, p, 1u, bands, (const float*)s.data(),
           (const float*)gamma.data(), dg.data(), db.data(), ws.data());
    expect_close((what + "dgamma").c_str(), narrow(dgamma), dg, 1e-5f);
    expect_close((what + "dbeta").c_str(), narrow(dbeta), db, 1e-5f);
    launch(elementwise, threads, batch_norm_bwd_f32, p, 1u, 0u, (const float*)x.data(),
           (const float*)dy.data(), (const float*)s.data(), (const float*)ws.data(), g.data());
    expect_close((what + "training dx").c_str(), narrow(dx), g, 1e-4f);
    std::vector<float> twice = g;
    for (auto& v : dx) v *= 2.0;
    launch(elementwise, threads, batch_norm_bwd_f32, p, 1u, 1u, (const float*)x.data(),
           (const float*)dy.data(), (const float*)s.data(), (const float*)ws.data(), twice.data());
    expect_close((what + "training dx added").c_str(), narrow(dx), twice, 1e-4f);

    // Inference forward and its backward.
    launch(dim3{1, 1, 1}, threads, batch_norm_running_fwd_f32, p, (const float*)running.data(),
           (const float*)running.data() + C, s.data());
    for (unsigned c = 0; c < C; ++c) {
        saved[c] = running[c];
        saved[C + c] = 1.0 / std::sqrt((double)running[C + c] + (double)1e-3f);
    }
    expect_close((what + "inference statistics").c_str(), narrow(saved), s, 1e-6f);
    launch(elementwise, threads, batch_norm_fwd_f32, p, (const float*)x.data(),
           (const float*)gamma.data(), (const float*)beta.data(), (const float*)s.data(),
           out.data());
    expect_close((what + "inference forward").c_str(), narrow(eval_y), out, 2e-5f);
    std::fill(dgamma.begin(), dgamma.end(), 0.5);
    std::fill(dg.begin(), dg.end(), 0.5f);
    for (size_t i = 0; i < n; ++i) {
        unsigned c = i % C;
        eval_dx[i] = gamma[c] * saved[C + c] * dy[i];
        dgamma[c] += dy[i] * (x[i] - saved[c]) * saved[C + c];
    }
    launch(sums, block, batch_norm_partials_bwd_f32, p, (const float*)x.data(),
           (const float*)dy.data(), (const float*)s.data(), ws.data());
    launch(totals, block, batch_norm_grads_bwd_f32, p, 0u, bands, (const float*)s.data(),
           (const float*)gamma.data(), dg.data(), db.data(), ws.data());
    expect_close((what + "inference dgamma").c_str(), narrow(dgamma), dg, 1e-5f);
    launch(elementwise, threads, batch_norm_bwd_f32, p, 0u, 0u, (const float*)x.data(),
           (const float*)dy.data(), (const float*)s.data(), (const float*)ws.data(), g.data());
    expect_close((what + "inference dx").c_str(), narrow(eval_dx), g, 1e-5f);
}

int main() {
    // (rows, channels, bands): one band and several, more bands than a row of threads
    // covers at once, channels on both sides of a block's 32 (below it, a warp reads
    // several rows, whole or with lanes left over).
    struct Case {
        unsigned rows, channels, bands;
    };
    Case cases[] = {{2, 1, 1}, {3, 3, 2}, {448, 64, 4}, {100, 37, 3}, {1000, 5, 13}, {640, 16, 5}};
    u32 kinds[] = {ACT_LINEAR, ACT_RELU, ACT_LEAKY_RELU, ACT_SIGMOID, ACT_TANH};
    int k = 0;
    for (Case c : cases) {
        for (bool unbiased : {false, true}) {
            batch_norm(c.rows, c.channels, c.bands, kinds[k % 5], unbiased);
            ++k;
        }
    }
    return failures();
}
