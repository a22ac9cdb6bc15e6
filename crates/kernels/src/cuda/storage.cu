// Storage kernels of the CUDA backend.

// Fills up to FILL_GROUP buffers in one launch (one buffer is a group of one), buffer
// blockIdx.y. Matches `FillGroup` in device.rs.
#define FILL_GROUP 16
struct FillGroup {
    u32 count;
    float value;
    u64 len[FILL_GROUP];
    float* y[FILL_GROUP];
};

extern "C" __global__ void fill_group_fwd_f32(FillGroup g) {
    if (blockIdx.y >= g.count) return;
    float* y = g.y[blockIdx.y];
    KILN_FOR(i, g.len[blockIdx.y]) { y[i] = g.value; }
}
