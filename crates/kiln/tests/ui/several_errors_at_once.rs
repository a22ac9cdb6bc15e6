// Three independent mistakes, all reported by one compilation.
kiln::model! {
    pub struct Net {
        input: [32, 32, 3],
        conv1: Conv2d(32, 3, rleu),
        pool1: MaxPooling2D(2),
        conv2: Conv2d(64, 3, relu),
        flat: Flatten,
        fc1: Dense(0, relu),
        out: Dense(10, softmax),
    }
}

fn main() {}
