// Keras's `MaxPooling2D` is kiln's `MaxPool2d`.
kiln::model! {
    pub struct Net {
        input: [28, 28, 1],
        conv1: Conv2d(32, 3, relu),
        pool1: MaxPooling2D(2),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

fn main() {}
