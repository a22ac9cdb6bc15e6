// PyTorch's momentum (0.1 kept of the batch) is Keras's 0.9; a momentum of 1 would
// never move the running averages, and a zero epsilon divides by zero on a constant
// channel.
kiln::model! {
    pub struct Net {
        input: [8, 8, 3],
        conv: Conv2d(8, 3),
        bn: BatchNorm(relu, momentum = 1.0, epsilon = 0.0),
        flat: Flatten,
        out: Dense(10, softmax),
    }
}

fn main() {}
