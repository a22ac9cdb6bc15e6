// A batch of 28x28 grey images passed to a model of 32x32 colour images.
use kiln::prelude::*;

kiln::model! {
    pub struct SeedCnn {
        input: [32, 32, 3],
        conv1: Conv2d(32, 3, relu),
        pool1: MaxPool2d(2),
        conv2: Conv2d(64, 3, relu),
        pool2: MaxPool2d(2),
        conv3: Conv2d(128, 3, relu),
        pool3: MaxPool2d(2),
        flat: Flatten,
        fc1: Dense(128, relu),
        out: Dense(10, softmax),
    }
}

fn main() -> kiln::Result<()> {
    let cpu = Cpu::new()?;
    let mut model = SeedCnn::new(&cpu, 64, 0)?;
    let mnist = Tensor::<Rank3<28, 28, 1>, Cpu>::zeros(&cpu, 64)?;
    model.forward(&mnist, Mode::Eval)?;
    Ok(())
}
