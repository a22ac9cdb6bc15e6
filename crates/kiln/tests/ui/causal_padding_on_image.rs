// `causal` padding is for sequences; an image convolution and 1-D pooling refuse it.
kiln::model! {
    pub struct Net {
        input: [16, 16, 3],
        conv: Conv2d(8, 3, padding = causal),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

kiln::model! {
    pub struct Seq {
        input: [16, 3],
        pool: MaxPool1d(2, padding = causal),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

fn main() {}
