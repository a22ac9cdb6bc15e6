// A Dense layer right after a rank-3 output: `Flatten` is missing.
kiln::model! {
    pub struct SeedCnn {
        input: [32, 32, 3],
        conv1: Conv2d(32, 3, relu),
        pool1: MaxPool2d(2),
        conv2: Conv2d(64, 3, relu),
        pool2: MaxPool2d(2),
        conv3: Conv2d(128, 3, relu),
        pool3: MaxPool2d(2),
        fc1: Dense(128, relu),
        out: Dense(10, softmax),
    }
}

fn main() {}
