// A dilated kernel spans more time steps than the pooled sequence has.
kiln::model! {
    pub struct Net {
        input: [40, 3],
        conv1: Conv1d(16, 5, relu),
        pool1: MaxPool1d(4),
        conv2: Conv1d(16, 3, relu, dilation = 5),
        pool: GlobalAvgPool1d,
        out: Dense(2, softmax),
    }
}

fn main() {}
