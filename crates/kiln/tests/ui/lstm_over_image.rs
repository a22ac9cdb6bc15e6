// A recurrent layer over a rank-3 image.
kiln::model! {
    pub struct Net {
        input: [32, 32, 3],
        lstm: Lstm(16),
        out: Dense(10, softmax),
    }
}

fn main() {}
