// The embedding gather and scatter-add against direct loops, and an id past the
// vocabulary reported through the status words without a read outside the table.
#include "emu.h"
#include "check.h"
#include "cuda/prelude.cuh"
#include "ops/embedding/embedding.cu"

int main() {
    const unsigned batch = 3, time = 5, vocabulary = 7, width = 4, n = batch * time;
    std::vector<float> ids(n), table = random_values(vocabulary * width);
    for (unsigned i = 0; i < n; ++i) ids[i] = float((i * 5 + 2) % vocabulary);
    EmbeddingParams p{batch, time, vocabulary, width};
    std::vector<float> y(n * width), want(n * width);
    for (unsigned i = 0; i < n; ++i)
        for (unsigned c = 0; c < width; ++c) want[i * width + c] = table[unsigned(ids[i]) * width + c];
    unsigned long long status[3] = {0, 0, 0};
    launch(dim3{2, 1, 1}, dim3{16, 1, 1}, embedding_fwd_f32, p, (const float*)ids.data(),
           (const float*)table.data(), y.data(), status);
    expect_close("embedding gather", want, y, 0.0f);
    expect("no report for valid ids", status[STATUS_INVALID_TARGET] == 0);

    std::vector<float> dy = random_values(n * width), dtable(vocabulary * width, 0.5f);
    std::vector<float> want_dt(vocabulary * width, 0.5f);
    for (unsigned i = 0; i < n; ++i)
        for (unsigned c = 0; c < width; ++c) want_dt[unsigned(ids[i]) * width + c] += dy[i * width + c];
    launch(dim3{3, 1, 1}, dim3{32, 1, 1}, embedding_bwd_f32, p, (const float*)ids.data(),
           (const float*)dy.data(), dtable.data());
    expect_close("embedding scatter-add", want_dt, dtable, 1e-6f);

    ids[8] = 7.0f;
    ids[11] = -1.0f;
    launch(dim3{2, 1, 1}, dim3{16, 1, 1}, embedding_fwd_f32, p, (const float*)ids.data(),
           (const float*)table.data(), y.data(), status);
    expect("the first bad id is reported", reported(status[STATUS_INVALID_TARGET], 8, 7.0f));
    return failures();
}
