// The embedding lookup: a gather of table rows, and the scatter-add of their
// gradients. An id that is not an integer below the vocabulary is reported through
// the status words (its flat index; the host names the row and position) and reads
// nothing.

struct EmbeddingParams {
    u32 batch;
    u32 time;
    u32 vocabulary;
    u32 width;
};

__device__ __forceinline__ bool embedding_valid(float id, u32 vocabulary) {
    return id >= 0.0f && id < (float)vocabulary && floorf(id) == id;
}

// One thread an output value: y[r, c] = table[ids[r], c].
extern "C" __global__ void embedding_fwd_f32(EmbeddingParams p, const float* ids,
                                             const float* table, float* y, u64* status) {
    u64 n = (u64)p.batch * p.time * p.width;
    KILN_FOR(i, n) {
        u64 r = i / p.width;
        u64 c = i - r * p.width;
        float id = ids[r];
        if (embedding_valid(id, p.vocabulary)) {
            y[i] = table[(u64)id * p.width + c];
        } else {
            y[i] = 0.0f;
            kiln_report(status, STATUS_INVALID_TARGET, r, id);
        }
    }
}

// One thread an output gradient value, added to its id's row: ids that repeat add
// into the same row, hence the atomics.
extern "C" __global__ void embedding_bwd_f32(EmbeddingParams p, const float* ids,
                                             const float* dy, float* dtable) {
    u64 n = (u64)p.batch * p.time * p.width;
    KILN_FOR(i, n) {
        u64 r = i / p.width;
        u64 c = i - r * p.width;
        float id = ids[r];
        if (embedding_valid(id, p.vocabulary)) {
            atomicAdd(&dtable[(u64)id * p.width + c], dy[i]);
        }
    }
}
