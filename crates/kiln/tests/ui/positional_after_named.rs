// A positional argument after a named one.
kiln::model! {
    pub struct Net {
        input: [28, 28, 1],
        conv1: Conv2d(filters = 32, 3, relu),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

fn main() {}
