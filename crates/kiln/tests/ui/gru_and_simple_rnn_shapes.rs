// The new recurrent kinds check their shapes as Lstm does: a GRU over a rank-3 image,
// a simple RNN's last step into a per-time-step layer, and a GRU that widens a
// residual branch's sequence (8 to 16 features) with no shortcut to match.
kiln::model! {
    pub struct OverImage {
        input: [32, 32, 3],
        gru: Gru(16),
        out: Dense(10, softmax),
    }
}

kiln::model! {
    pub struct LastStep {
        input: tokens[16] of 65,
        embed: Embedding(65, 8),
        rnn: SimpleRnn(32),
        out: TimeDense(65, softmax),
    }
}

kiln::model! {
    pub struct Widen {
        input: [20, 8],
        res: Residual {
            gru: Gru(16, return_sequences = true, reset_after = false),
        },
    }
}

fn main() {}
