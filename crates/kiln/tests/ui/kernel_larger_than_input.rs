// The third convolution's 5x5 kernel does not fit the 3x3 map it gets.
kiln::model! {
    pub struct Net {
        input: [12, 12, 1],
        conv1: Conv2d(8, 3, relu),
        pool1: MaxPool2d(2),
        conv2: Conv2d(16, 3, relu),
        conv3: Conv2d(32, 5, relu),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

fn main() {}
