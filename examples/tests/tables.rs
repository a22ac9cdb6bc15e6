//! The recipes of the `binary_classification` and `regression` examples, trained for
//! a few epochs on the tables that ship in `examples/data`: each must clearly beat
//! the answer that needs no learning.

use kiln::prelude::*;
use kiln_examples::args::default_data_dir;
use kiln_examples::{breast_cancer, diabetes};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const BATCH: usize = 16;
const SEED: u64 = 1;

#[test]
fn breast_cancer_recipe_beats_the_majority_class() -> TestResult {
    let tables = breast_cancer::load(&default_data_dir())?;
    let cpu = Cpu::new()?;
    let adam = Optimizer::new(Adam::default());
    let mut trainer = breast_cancer::trainer(&cpu, BATCH, SEED, adam)?;
    let options = breast_cancer::fit_options(&tables, 10, BATCH, SEED).verbose(Verbosity::Silent);
    trainer.fit(tables.train.clone(), options)?;
    let test = trainer.evaluate(tables.test.clone(), BATCH, &tables.pipeline)?;
    let accuracy = test.get("accuracy").ok_or("no accuracy was reported")?;

    let counts = tables.test.class_counts();
    let majority = counts.iter().copied().max().unwrap_or(0) as f64 / tables.test.len() as f64;
    assert!(
        (0.6..0.7).contains(&majority),
        "benign tumours are about 63 % of the table: {counts:?}"
    );
    assert!(
        accuracy > 0.9,
        "test accuracy {accuracy:.4} after 10 epochs; always answering the majority class gives {majority:.4}"
    );
    Ok(())
}

#[test]
fn diabetes_recipe_beats_predicting_the_mean() -> TestResult {
    let tables = diabetes::load(&default_data_dir())?;
    let cpu = Cpu::new()?;
    let mut trainer = diabetes::trainer(&cpu, BATCH, SEED)?;
    let options = diabetes::fit_options(&tables, 20, BATCH, SEED).verbose(Verbosity::Silent);
    trainer.fit(tables.train.clone(), options)?;
    let test = trainer.evaluate(tables.test.clone(), BATCH, &tables.pipeline)?;
    let mae = tables.points(test.get("mae").ok_or("no MAE was reported")?);
    let baseline = tables.mean_baseline_mae()?;
    assert!(
        (40.0..100.0).contains(&baseline),
        "predicting the mean should miss by tens of points, not {baseline:.1}"
    );
    assert!(
        mae < 0.85 * baseline,
        "test MAE {mae:.1} points after 20 epochs; predicting the training mean gives {baseline:.1}"
    );
    Ok(())
}
