// A misspelt activation, and a quoted padding as Keras writes it.
kiln::model! {
    pub struct Net {
        input: [28, 28, 1],
        conv1: Conv2d(32, 3, activation = sigmod, padding = "same"),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

fn main() {}
