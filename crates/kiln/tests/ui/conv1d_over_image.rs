// Conv1d and pooling over time take `[time, features]` sequences, not images.
kiln::model! {
    pub struct Net {
        input: [28, 28, 1],
        conv: Conv1d(8, 3, relu),
        pool: GlobalMaxPool1d,
        out: Dense(10, softmax),
    }
}

fn main() {}
