// Two layers named `conv`: names become struct fields.
kiln::model! {
    pub struct Net {
        input: [28, 28, 1],
        conv: Conv2d(32, 3, relu),
        conv: Conv2d(64, 3, relu),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

fn main() {}
