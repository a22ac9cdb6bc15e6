// Metric accumulation on the example of the op's own unit test, and the status word
// for an invalid label.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/metric/metric.cu"

int main() {
    MetricParams p{0, 4, 3, 1, 2, 0.5f};
    std::vector<float> out{0.7f, 0.2f, 0.1f, 0.1f, 0.5f, 0.4f, 0.2f, 0.6f, 0.2f, 0.1f, 0.3f, 0.6f};
    std::vector<float> labels{0, 2, 1, 2}, acc(11, 0.0f), want(11, 0.0f);
    std::vector<unsigned long long> status(STATUS_WORDS, 0);
    for (int k = 0; k < 2; ++k)
        launch(dim3{1, 1, 1}, dim3{256, 1, 1}, confusion_fwd_f32, p, (const float*)out.data(),
               (const float*)labels.data(), acc.data(), status.data());
    for (auto [truth, pred] : std::vector<std::pair<int, int>>{{0, 0}, {2, 1}, {1, 1}, {2, 2}}) want[truth * 3 + pred] += 2;
    want[9] = 8;
    want[10] = 8;
    expect_close("confusion matrix, top-2 hits, count", want, acc, 0.0f);
    std::vector<float> bad{0, 3, 1, 2.5f};
    launch(dim3{1, 1, 1}, dim3{256, 1, 1}, confusion_fwd_f32, p, (const float*)out.data(),
           (const float*)bad.data(), acc.data(), status.data());
    expect("the first invalid label is reported", reported(status[STATUS_INVALID_TARGET], 1, 3.0f));

    std::vector<float> o{1, 2, 3, 4}, t{1.5f, 2, 1, 5}, sums(10, 0.0f);
    for (int k = 0; k < 2; ++k)
        launch(dim3{1, 1, 1}, dim3{256, 1, 1}, regression_fwd_f32, 4ull, (const float*)o.data(),
               (const float*)t.data(), sums.data());
    expect_close("regression sums", {7, 0, 10.5f, 0, 19, 0, 64.5f, 0, 8, 0}, sums, 0.0f);
    return failures();
}
