// Keras's `strides` is kiln's `stride`.
kiln::model! {
    pub struct Net {
        input: [28, 28, 1],
        conv1: Conv2d(32, 3, relu, strides = 2),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

fn main() {}
