// A dense layer with no units, named form.
kiln::model! {
    pub struct Net {
        input: [64],
        hidden: Dense(units = 0, activation = relu),
        out: Dense(10, softmax),
    }
}

fn main() {}
