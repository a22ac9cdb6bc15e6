// A convolution with no filters.
kiln::model! {
    pub struct Net {
        input: [28, 28, 1],
        conv1: Conv2d(0, 3, relu),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

fn main() {}
