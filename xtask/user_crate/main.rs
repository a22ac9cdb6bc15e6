//! A program as a new user writes it, in a crate of its own outside kiln's workspace:
//! only the facade, `kiln::Result` and the builders, from data to a reloaded model's
//! predictions.

use kiln::prelude::*;

kiln::model! {
    /// A small classifier for the digits.
    pub struct Digits {
        input: [28, 28, 1],
        flat: Flatten,
        hidden: Dense(64, relu),
        out: Dense(10, softmax),
    }
}

fn main() -> kiln::Result<()> {
    let (train, test) = kiln::data::mnist::embedded()?;
    let train = train.select(&(0..2000).collect::<Vec<_>>())?;
    let test = test.select(&(0..500).collect::<Vec<_>>())?;
    let scale = Pipeline::new().scale(1.0 / 255.0);

    let cpu = Cpu::new()?;
    let optimizer = Optimizer::new(Adam::default().learning_rate(2e-3));
    let model = Digits::new(&cpu, 100, 1)?;
    let mut trainer = Trainer::new(model, Loss::sparse_categorical_crossentropy(), optimizer)?
        .metrics([Metric::Accuracy]);
    let options = FitOptions::new(3, 100)
        .pipeline(scale.clone())
        .verbose(Verbosity::Epoch);
    trainer.fit(train, options)?;

    let path = std::env::temp_dir().join(format!("kiln-user-crate-{}.safetensors", std::process::id()));
    checkpoint::save(&path, trainer.model(), &checkpoint::CheckpointExtra::default())?;
    let mut loaded = Digits::new(&cpu, 100, 2)?;
    checkpoint::load_weights(&path, &mut loaded)?;
    std::fs::remove_file(&path)?;
    let mut restored = Trainer::new(loaded, Loss::sparse_categorical_crossentropy(), Optimizer::new(Adam::default()))?
        .metrics([Metric::Accuracy]);

    let before = trainer.predict(test.clone(), 100, &scale)?;
    let after = restored.predict(test.clone(), 100, &scale)?;
    assert_eq!(before, after, "the reloaded model predicts as the trained one");
    let accuracy = restored.evaluate(test, 100, &scale)?.get("accuracy").unwrap_or(0.0);
    println!("user crate: test accuracy {accuracy:.4} after reloading");
    if accuracy < 0.8 {
        eprintln!("user crate: accuracy {accuracy:.4} is below 0.8");
        std::process::exit(1);
    }
    Ok(())
}
