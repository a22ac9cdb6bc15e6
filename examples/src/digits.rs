//! The quickstart's network: the seed's CNN adapted to 28x28 grey digits, shared by
//! `quickstart` (which trains it) and `export` (which trains and exports it).

kiln::model! {
    /// Three Conv2D + MaxPool blocks, Flatten, Dense(128, relu), Dense(10, softmax):
    /// the Keras CIFAR-10 tutorial's network on 28x28x1 inputs. `same` padding keeps a
    /// 3x3 map after the third block (valid padding would leave 1x1 of a 28x28 digit),
    /// and dropout before the dense layers holds back over-fitting on 8,000 samples.
    pub struct DigitCnn {
        input: [28, 28, 1],
        conv1: Conv2d(32, 3, relu, padding = same),
        pool1: MaxPool2d(2),
        conv2: Conv2d(64, 3, relu, padding = same),
        pool2: MaxPool2d(2),
        conv3: Conv2d(128, 3, relu, padding = same),
        pool3: MaxPool2d(2),
        flat: Flatten,
        drop: Dropout(0.25),
        fc1: Dense(128, relu),
        out: Dense(10, softmax),
    }
}
