// A syntax error in one layer does not hide the mistake in another.
kiln::model! {
    pub struct Net {
        input: [28, 28, 1],
        conv1: Conv2d(32 3),
        flat: Flatten,
        out: Dense(10, softmaks),
    }
}

fn main() {}
