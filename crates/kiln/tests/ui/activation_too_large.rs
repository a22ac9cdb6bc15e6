// A layer whose output, 5 billion values a sample, is more than the kernels index
// with 32 bits.
kiln::model! {
    pub struct Net {
        input: [1000, 1000, 3],
        conv: Conv2d(5000, 1),
        flat: Flatten,
        out: Dense(10),
    }
}

fn main() {}
