// The fused attention's kernels against the plain computation in double (the whole
// attention matrix, a softmax, then the matrices of its backward pass), causal and
// not, on grids smaller than the rows.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/attention/attention.cu"

#include <string>

static std::vector<float> narrow(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

static void attention(unsigned B, unsigned T, unsigned H, unsigned D, bool causal, unsigned blocks) {
    std::string what = std::to_string(B) + "x" + std::to_string(T) + ", " + std::to_string(H) + " heads of " +
                       std::to_string(D) + (causal ? ", causal: " : ": ");
    const unsigned W = H * D;
    const size_t rows = (size_t)B * T, stats = rows * H;
    auto qkv = random_values(rows * 3 * W, 1.5f), d_o = random_values(rows * W);
    auto at = [&](unsigned b, unsigned t, unsigned part, unsigned h, unsigned i) {
        return (double)qkv[((size_t)b * T + t) * 3 * W + part * W + h * D + i];
    };
    std::vector<double> o(rows * W, 0.0), lse(stats), delta(stats), dqkv(rows * 3 * W, 0.0);
    const double scale = 1.0 / std::sqrt((double)D);
    for (unsigned b = 0; b < B; ++b)
        for (unsigned h = 0; h < H; ++h) {
            // p[t][k], the probabilities of the whole matrix.
            std::vector<std::vector<double>> p(T, std::vector<double>(T, 0.0));
            for (unsigned t = 0; t < T; ++t) {
                unsigned keys = causal ? t + 1 : T;
                double m = -1e300, z = 0.0;
                std::vector<double> s(keys);
                for (unsigned k = 0; k < keys; ++k) {
                    s[k] = 0.0;
                    for (unsigned i = 0; i < D; ++i) s[k] += at(b, t, 0, h, i) * at(b, k, 1, h, i);
                    s[k] *= scale;
                    m = std::max(m, s[k]);
                }
                for (unsigned k = 0; k < keys; ++k) z += std::exp(s[k] - m);
                lse[((size_t)b * H + h) * T + t] = m + std::log(z);
                for (unsigned k = 0; k < keys; ++k) p[t][k] = std::exp(s[k] - m) / z;
                for (unsigned k = 0; k < keys; ++k)
                    for (unsigned i = 0; i < D; ++i) o[((size_t)b * T + t) * W + h * D + i] += p[t][k] * at(b, k, 2, h, i);
            }
            auto g = [&](unsigned t, unsigned i) { return (double)d_o[((size_t)b * T + t) * W + h * D + i]; };
            auto grad = [&](unsigned t, unsigned part, unsigned i) -> double& {
                return dqkv[((size_t)b * T + t) * 3 * W + part * W + h * D + i];
            };
            for (unsigned t = 0; t < T; ++t) {
                double dl = 0.0;
                for (unsigned i = 0; i < D; ++i) dl += g(t, i) * o[((size_t)b * T + t) * W + h * D + i];
                delta[((size_t)b * H + h) * T + t] = dl;
                for (unsigned k = 0; k < T; ++k) {
                    if (p[t][k] == 0.0) continue;
                    double dp = 0.0;
                    for (unsigned i = 0; i < D; ++i) dp += g(t, i) * at(b, k, 2, h, i);
                    double ds = p[t][k] * (dp - dl) * scale;
                    for (unsigned i = 0; i < D; ++i) {
                        grad(t, 0, i) += ds * at(b, k, 1, h, i);
                        grad(k, 1, i) += ds * at(b, t, 0, h, i);
                        grad(k, 2, i) += p[t][k] * g(t, i);
                    }
                }
            }
        }
    AttentionParams p{B, T, H, D, causal ? 1u : 0u};
    std::vector<float> got_o(rows * W), got_lse(stats);
    launch(dim3{blocks, 1, 1}, dim3{32, 1, 1}, attention_fwd_f32, p, (const float*)qkv.data(), got_o.data(),
           got_lse.data());
    expect_close((what + "output").c_str(), narrow(o), got_o, 1e-5f);
    expect_close((what + "log-sum-exp").c_str(), narrow(lse), got_lse, 1e-5f);

    // As the launch code runs them: delta, then dk and dv, then dq.
    std::vector<float> got_delta(stats), got_dqkv(rows * 3 * W, 7.0f);
    launch(dim3{blocks, 1, 1}, dim3{32, 1, 1}, attention_delta_bwd_f32, p, (const float*)got_o.data(),
           (const float*)d_o.data(), got_delta.data());
    expect_close((what + "delta").c_str(), narrow(delta), got_delta, 1e-5f);
    launch(dim3{blocks, 1, 1}, dim3{32, 1, 1}, attention_bwd_f32, p, (const float*)qkv.data(),
           (const float*)got_lse.data(), (const float*)d_o.data(), (const float*)got_delta.data(), got_dqkv.data());
    launch(dim3{blocks, 1, 1}, dim3{32, 1, 1}, attention_dq_bwd_f32, p, (const float*)qkv.data(),
           (const float*)got_lse.data(), (const float*)d_o.data(), (const float*)got_delta.data(), got_dqkv.data());
    expect_close((what + "query, key and value gradients").c_str(), narrow(dqkv), got_dqkv, 1e-4f);
}

int main() {
    for (bool causal : {false, true}) {
        attention(2, 5, 2, 3, causal, 2);
        attention(1, 37, 1, 8, causal, 1);
        attention(3, 19, 4, 16, causal, 5);
    }
    return failures();
}
