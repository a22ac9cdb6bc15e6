// The macro writes the struct's impls; `#[derive]` is refused.
kiln::model! {
    /// Docs are fine.
    #[derive(Clone, Debug)]
    pub struct Net {
        input: [64],
        out: Dense(10, softmax),
    }
}

fn main() {}
