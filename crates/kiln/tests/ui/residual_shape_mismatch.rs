// A residual branch that halves the image and doubles the channels, with no shortcut
// to carry the input to the same shape; and one whose shortcut gets it wrong.
kiln::model! {
    pub struct Downsample {
        input: [32, 32, 32],
        res2: Residual(activation = relu) {
            a: Conv2d(64, 3, stride = 2, padding = same, activation = relu),
            b: Conv2d(64, 3, padding = same),
        },
    }
}

kiln::model! {
    pub struct WrongShortcut {
        input: [32, 32, 32],
        res3: Residual {
            a: Conv2d(128, 3, stride = 2, padding = same),
            shortcut: Conv2d(128, 1),
        },
    }
}

kiln::model! {
    pub struct Vectors {
        input: [16],
        res: Residual {
            a: Dense(32),
        },
    }
}

fn main() {}
