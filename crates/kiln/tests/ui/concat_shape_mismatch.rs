// Branches to concatenate must agree on every axis but the channels.
kiln::model! {
    pub struct Net {
        input: [16, 16, 8],
        mix: Concat {
            full: Conv2d(8, 3, padding = same),
            half: Conv2d(8, 3, stride = 2, padding = same),
        },
    }
}

fn main() {}
