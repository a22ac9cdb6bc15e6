// The model does not say what one sample looks like.
kiln::model! {
    pub struct Net {
        conv1: Conv2d(32, 3, relu),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

fn main() {}
