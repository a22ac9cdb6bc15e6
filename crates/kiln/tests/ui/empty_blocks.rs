// A residual block with only a shortcut, a concatenation of one branch, and an empty
// chain.
kiln::model! {
    pub struct Net {
        input: [8, 8, 4],
        res: Residual {
            shortcut: Conv2d(4, 1),
        },
        one: Concat {
            only: Conv2d(4, 1),
        },
        chain: Sequential {},
    }
}

fn main() {}
