// The kernels built on block reductions and atomics: softmax forward and backward,
// the bias gradient's column sums, the sum of squares and the non-finite check.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/activation/activation.cu"
#include "ops/bias/bias.cu"
#include "ops/reduce/reduce.cu"

static void softmax() {
    for (auto [rows, cols] : std::vector<std::pair<unsigned, unsigned>>{{1, 1}, {7, 10}, {5, 333}, {3, 1000}}) {
        auto x = random_values(rows * cols, 4.0f), g = random_values(rows * cols);
        std::vector<float> want_y(x.size()), want_g = g;
        for (unsigned r = 0; r < rows; ++r) {
            const float* xr = &x[r * cols];
            float m = -INFINITY;
            for (unsigned c = 0; c < cols; ++c) m = std::max(m, xr[c]);
            double s = 0, d = 0;
            for (unsigned c = 0; c < cols; ++c) s += std::exp(double(xr[c] - m));
            for (unsigned c = 0; c < cols; ++c) want_y[r * cols + c] = float(std::exp(double(xr[c] - m)) / s);
            for (unsigned c = 0; c < cols; ++c) d += (double)want_g[r * cols + c] * want_y[r * cols + c];
            for (unsigned c = 0; c < cols; ++c)
                want_g[r * cols + c] = float(want_y[r * cols + c] * (want_g[r * cols + c] - d));
        }
        unsigned threads = 32;
        while (threads < cols && threads < 256) threads *= 2;
        ActivationParams p{rows, cols, ACT_SOFTMAX, 0.0f};
        std::vector<float> y(x.size());
        launch(dim3{rows, 1, 1}, dim3{threads, 1, 1}, softmax_fwd_f32, p, (const float*)x.data(), y.data());
        expect_close("softmax forward", want_y, y, 1e-5f);
        launch(dim3{rows, 1, 1}, dim3{threads, 1, 1}, softmax_bwd_f32, p, (const float*)y.data(), g.data());
        expect_close("softmax backward", want_g, g, 1e-4f);
        // In place, one block striding over every row.
        std::vector<float> z = x;
        launch(dim3{1, 1, 1}, dim3{threads, 1, 1}, softmax_fwd_f32, p, (const float*)z.data(), z.data());
        expect_close("softmax in place, one block", want_y, z, 1e-5f);
    }
}

static void bias_grad() {
    for (auto [rows, cols] : std::vector<std::pair<unsigned, unsigned>>{{1, 1}, {5, 33}, {500, 37}, {3, 100}}) {
        auto dy = random_values(rows * cols, 2.0f);
        std::vector<float> want(cols, 1.0f), db(cols, 1.0f);
        for (unsigned r = 0; r < rows; ++r)
            for (unsigned c = 0; c < cols; ++c) want[c] += dy[r * cols + c];
        BiasParams p{rows, cols, ACT_LINEAR, 0.0f};
        for (unsigned bands : {1u, 3u}) {
            launch(dim3{(cols + 31) / 32, bands, 1}, dim3{32, 8, 1}, bias_bwd_f32, p, (const float*)dy.data(),
                   db.data());
            expect_close("bias gradient", want, db, 1e-4f);
            for (unsigned c = 0; c < cols; ++c) db[c] = 1.0f;
        }
    }
}

static void sum_squares() {
    for (unsigned long long n : {1ull, 255ull, 257ull, 70000ull}) {
        auto x = random_values(n, 10.0f);
        double want = 0;
        for (float v : x) want += (double)v * v;
        unsigned blocks = (unsigned)std::min<unsigned long long>((n + 255) / 256, 256);
        std::vector<double> partials(256);
        launch(dim3{blocks, 1, 1}, dim3{256, 1, 1}, sum_squares_fwd_f32, (const float*)x.data(), n,
               partials.data());
        double got = 0;
        for (unsigned b = 0; b < blocks; ++b) got += partials[b];
        expect("sum of squares", std::fabs(got - want) <= 1e-12 * want);
    }
}

static void check_finite() {
    // One buffer, a group of one.
    unsigned long long n = 3000;
    auto x = random_values(n);
    FiniteGroup g{};
    g.count = 1;
    g.len[0] = n;
    g.x[0] = x.data();
    std::vector<unsigned long long> status(STATUS_WORDS, 0);
    launch(dim3{blocks_for(n), 1, 1}, dim3{256, 1, 1}, check_finite_group_fwd_f32, g, status.data());
    expect("finite values report nothing", status[STATUS_NON_FINITE] == 0);
    x[2999] = NAN;
    x[1234] = -INFINITY;
    x[2000] = INFINITY;
    launch(dim3{blocks_for(n), 1, 1}, dim3{256, 1, 1}, check_finite_group_fwd_f32, g, status.data());
    expect("the first non-finite value is reported", reported(status[STATUS_NON_FINITE], 1234, -INFINITY));
    expect("other words stay clear", status[STATUS_NON_FINITE_OUTPUT] == 0 && status[STATUS_INVALID_TARGET] == 0);
}

static void check_finite_group() {
    // Three buffers as if one after another: 500, 7 and 900 values.
    std::vector<float> a = random_values(500), b = random_values(7), c = random_values(900);
    FiniteGroup g{};
    g.count = 3;
    const float* xs[3] = {a.data(), b.data(), c.data()};
    unsigned long long lens[3] = {500, 7, 900}, offset = 0;
    for (int t = 0; t < 3; ++t) {
        g.len[t] = lens[t];
        g.offset[t] = offset;
        g.x[t] = xs[t];
        offset += lens[t];
    }
    std::vector<unsigned long long> status(STATUS_WORDS, 0);
    launch(dim3{2, 4, 1}, dim3{256, 1, 1}, check_finite_group_fwd_f32, g, status.data());
    expect("finite buffers report nothing", status[STATUS_NON_FINITE] == 0);
    c[899] = NAN;
    b[5] = -INFINITY;
    launch(dim3{2, 4, 1}, dim3{256, 1, 1}, check_finite_group_fwd_f32, g, status.data());
    expect("the first non-finite value across the buffers", reported(status[STATUS_NON_FINITE], 505, -INFINITY));
}

int main() {
    softmax();
    bias_grad();
    sum_squares();
    check_finite();
    check_finite_group();
    return failures();
}
