// An input of 30 billion values a sample, with a parameter count that overflows
// `usize`: the input is the first thing too large.
kiln::model! {
    pub struct Net {
        input: [100000, 100000, 3],
        flat: Flatten,
        out: Dense(4000000000),
    }
}

fn main() {}
