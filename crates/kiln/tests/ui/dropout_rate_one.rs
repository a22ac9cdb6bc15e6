// A dropout rate of 1 drops everything.
kiln::model! {
    pub struct Net {
        input: [64],
        hidden: Dense(32, relu),
        drop: Dropout(rate = 1.0),
        out: Dense(10, softmax),
    }
}

fn main() {}
