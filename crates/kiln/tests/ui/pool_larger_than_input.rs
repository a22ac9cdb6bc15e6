// Too much pooling: the last window (2x2) is larger than the 1x1 map it gets.
kiln::model! {
    pub struct Net {
        input: [8, 8, 3],
        pool1: MaxPool2d(2),
        pool2: MaxPool2d(2),
        pool3: MaxPool2d(2),
        pool4: AvgPool2d(2),
        flat: Flatten,
        out: Dense(10),
    }
}

fn main() {}
