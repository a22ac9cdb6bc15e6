// An Embedding whose table has fewer rows than the input's vocabulary.
kiln::model! {
    pub struct Lm {
        input: tokens[16] of 65,
        embed: Embedding(50, 8),
        lstm: Lstm(16),
    }
}

fn main() {}
