// A residual branch over a sequence that widens the features (8 to 16) with no
// shortcut to carry the input to the same width; and two branches of a
// concatenation whose sequences differ in length.
kiln::model! {
    pub struct Widen {
        input: [20, 8],
        res: Residual {
            a: Conv1d(16, 3, padding = causal),
        },
    }
}

kiln::model! {
    pub struct Lengths {
        input: [20, 8],
        cat: Concat {
            a: Conv1d(4, 3, padding = same),
            b: Conv1d(4, 3),
        },
    }
}

fn main() {}
