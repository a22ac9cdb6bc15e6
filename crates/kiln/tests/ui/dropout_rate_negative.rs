// A dropout rate below 0.
kiln::model! {
    pub struct Net {
        input: [64],
        hidden: Dense(32, relu),
        drop: Dropout(-0.1),
        out: Dense(10, softmax),
    }
}

fn main() {}
