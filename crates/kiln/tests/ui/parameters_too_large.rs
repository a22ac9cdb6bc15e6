// A layer of 4.9 billion parameters, more than the kernels index with 32 bits.
kiln::model! {
    pub struct Net {
        input: [70000],
        hidden: Dense(70000, relu),
        out: Dense(10),
    }
}

fn main() {}
