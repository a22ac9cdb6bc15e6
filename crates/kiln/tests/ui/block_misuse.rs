// Names twice in a block, a shortcut that is the identity already, a shortcut in a
// concatenation, an activation the sum cannot apply, a block without a body, a layer
// with one, and Keras's names for the blocks.
kiln::model! {
    pub struct Net {
        input: [8, 8, 4],
        res: Residual(activation = gelu) {
            a: Conv2d(4, 3, padding = same),
            a: Conv2d(4, 3, padding = same),
            shortcut: Identity,
        },
        mix: Concat {
            left: Conv2d(4, 1),
            shortcut: Conv2d(4, 1),
        },
        bare: Residual,
        conv: Conv2d(4, 1) {
            a: Relu,
        },
        add: Add {
            a: Relu,
        },
        cat: Concatenate {
            a: Relu,
            b: Relu,
        },
    }
}

fn main() {}
