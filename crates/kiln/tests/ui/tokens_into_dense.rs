// Token ids straight into a Dense layer: they need an Embedding first.
kiln::model! {
    pub struct Lm {
        input: tokens[16] of 65,
        fc: Dense(10),
    }
}

fn main() {}
