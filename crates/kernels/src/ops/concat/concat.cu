// Concatenation along the last axis: one input's slice of every row of the output,
// one thread a value of the input.

struct ConcatParams {
    u32 rows;
    u32 width;
    u32 total;
    u32 offset;
};

// Where input value `i` sits in the output.
template <typename I>
__device__ __forceinline__ I concat_place(const ConcatParams& p, I i) {
    I row = i / p.width;
    return row * p.total + p.offset + (i - row * p.width);
}

// y[row * total + offset + c] = x[row * width + c].
extern "C" __global__ void concat_fwd_f32(ConcatParams p, const float* x, float* y) {
    u64 n = (u64)p.rows * p.width;
    KILN_FOR_EACH(i, n, (u64)p.rows * p.total, y[concat_place(p, i)] = x[i]);
}

// dx[row * width + c] (= or +=) dy[row * total + offset + c].
extern "C" __global__ void concat_bwd_f32(ConcatParams p, const float* dy, float* dx,
                                          u32 accumulate) {
    u64 n = (u64)p.rows * p.width;
    KILN_FOR_EACH(i, n, (u64)p.rows * p.total, {
        float g = dy[concat_place(p, i)];
        dx[i] = accumulate ? dx[i] + g : g;
    });
}
