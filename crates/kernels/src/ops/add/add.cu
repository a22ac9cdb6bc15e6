// The element-wise sum with the epilogue activation of `kiln_activate` (the bias's),
// so that each value rounds as on the CPU.

struct AddParams {
    u32 len;
    u32 activation;
    float negative_slope;
};

// y = act(a + b); `b` may be `y` itself (the in-place sum, y = act(a + y)): each
// thread reads its element before it writes it.
extern "C" __global__ void add_fwd_f32(AddParams p, const float* a, const float* b, float* y) {
    KILN_FOR(i, p.len) { y[i] = kiln_activate(p.activation, p.negative_slope, a[i] + b[i]); }
}
