// `return_sequences = false` (the default) leaves one vector: a per-time-step layer
// after it has no steps to run over.
kiln::model! {
    pub struct Lm {
        input: tokens[16] of 65,
        embed: Embedding(65, 8),
        lstm: Lstm(32),
        out: TimeDense(65, softmax),
    }
}

fn main() {}
