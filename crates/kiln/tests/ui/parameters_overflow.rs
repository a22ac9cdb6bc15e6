// A layer whose parameter count overflows `usize`: 2^32 - 1 inputs times 2^32 + 1
// units.
kiln::model! {
    pub struct Net {
        input: [4294967295],
        out: Dense(4294967297),
    }
}

fn main() {}
