// Keras spells it `Conv2D`; kiln's layer is `Conv2d`.
kiln::model! {
    pub struct Net {
        input: [28, 28, 1],
        conv1: Conv2D(32, 3, relu),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

fn main() {}
