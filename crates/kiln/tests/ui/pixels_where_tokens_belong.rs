// A batch of real values passed to a model of token ids.
use kiln::prelude::*;

kiln::model! {
    pub struct Lm {
        input: tokens[16] of 65,
        embed: Embedding(65, 8),
        lstm: Lstm(32, return_sequences = true),
        out: TimeDense(65, softmax),
    }
}

fn main() -> kiln::Result<()> {
    let cpu = Cpu::new()?;
    let mut model = Lm::new(&cpu, 4, 0)?;
    let pixels = Tensor::<Rank1<16>, Cpu>::zeros(&cpu, 4)?;
    model.forward(&pixels, Mode::Eval)?;
    Ok(())
}
