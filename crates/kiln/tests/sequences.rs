//! Sequence models in `model!`: token ids through an `Embedding`, stacked `Lstm`s
//! and a per-step `TimeDense`, trained with the per-step loss; a real-valued sequence
//! into an `Lstm` that returns its last step.

#![allow(clippy::unwrap_used)]

use kiln::losses::SequenceCriterion;
use kiln::prelude::*;
use kiln::shape::Tokens;

kiln::model! {
    /// A character language model in miniature.
    pub struct TinyLm {
        input: tokens[8] of 11,
        embed: Embedding(11, 6),
        lstm1: Lstm(12, return_sequences = true),
        lstm2: Lstm(12, return_sequences = true),
        out: TimeDense(11, softmax),
    }
}

kiln::model! {
    /// A classifier of real-valued sequences.
    pub struct SequenceClassifier {
        input: [6, 3],
        lstm: Lstm(8),
        out: Dense(2, softmax),
    }
}

#[test]
fn token_models_carry_their_vocabulary_in_their_types() {
    assert_eq!(TinyLm::<Cpu>::INPUT_SHAPE, Shape::tokens(&[8], 11));
    assert_eq!(TinyLm::<Cpu>::OUTPUT_SHAPE, Shape::new(&[8, 11]));
    // 11 * 6 + 4 * ((6 + 12) * 12 + 12) + 4 * ((12 + 12) * 12 + 12) + 12 * 11 + 11.
    assert_eq!(TinyLm::<Cpu>::PARAMETERS, 66 + 912 + 1200 + 143);
    let summary = TinyLm::<Cpu>::summary();
    assert!(summary.contains("Lstm"), "{summary}");
}

/// Next-token prediction on a repeating pattern: the per-step loss falls far below
/// a uniform guess's `ln 11`.
#[test]
fn a_token_model_learns_a_repeating_pattern() {
    let cpu = Cpu::with_threads(2).unwrap();
    let mut model = TinyLm::new(&cpu, 4, 7).unwrap();
    let pattern = [1u32, 4, 2, 9, 3];
    let ids: Vec<u32> = (0..32).map(|i| pattern[(i + i / 8) % 5]).collect();
    let next: Vec<u32> = (0..32).map(|i| pattern[(i + i / 8 + 1) % 5]).collect();
    let x = Tensor::<Tokens<8, 11>, Cpu>::from_ids(&cpu, 4, &ids).unwrap();
    let mut loss = SequenceCriterion::<8, 11, Cpu>::new(
        Loss::sparse_categorical_crossentropy(),
        &cpu,
        4,
        TinyLm::<Cpu>::OUTPUT_ACTIVATION,
    )
    .unwrap();
    let mut optimizer = Optimizer::new(Adam {
        learning_rate: 0.02,
        ..Adam::default()
    });
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..150 {
        let out = model.forward(&x, Mode::Train).unwrap();
        last = loss.compute(&out, &next, None).unwrap();
        first.get_or_insert(last);
        model.zero_grad().unwrap();
        model.backward(loss.gradient(), loss.grad_at()).unwrap();
        optimizer.step(&mut model).unwrap();
    }
    let first = first.unwrap();
    assert!((first - 11f32.ln()).abs() < 0.1, "{first}");
    assert!(last < 0.1, "{first} -> {last}");
}

#[test]
fn token_ids_out_of_range_are_errors_naming_their_place() {
    let cpu = Cpu::with_threads(1).unwrap();
    let err =
        Tensor::<Tokens<8, 11>, Cpu>::from_ids(&cpu, 1, &[0, 1, 2, 11, 0, 0, 0, 0]).unwrap_err();
    assert!(err.to_string().contains("batch row 0, position 3"), "{err}");
    // Ids that reach the model unchecked, as host values, are checked by the
    // embedding before anything reads the table.
    let mut model = TinyLm::new(&cpu, 2, 7).unwrap();
    let mut ids = [3.0f32; 16];
    ids[13] = 40.0;
    let Err(err) = model.forward_host(&ids, Mode::Eval) else {
        panic!("an id of 40 passed");
    };
    assert!(err.to_string().contains("batch row 1, position 5"), "{err}");
}

/// The sign of a sequence's sum, read at its last step.
#[test]
fn a_real_valued_sequence_model_learns_a_sign() {
    let cpu = Cpu::with_threads(2).unwrap();
    let mut model = SequenceClassifier::new(&cpu, 16, 3).unwrap();
    let x: Vec<f32> = (0..16 * 18)
        .map(|i| ((i * 7919 % 97) as f32 / 48.0) - 1.0)
        .collect();
    let labels: Vec<u32> = x
        .chunks(18)
        .map(|s| u32::from(s.iter().sum::<f32>() > 0.0))
        .collect();
    let mut criterion = Criterion::new(
        Loss::sparse_categorical_crossentropy(),
        &cpu,
        16,
        SequenceClassifier::<Cpu>::OUTPUT_ACTIVATION,
    )
    .unwrap();
    let mut optimizer = Optimizer::new(Adam {
        learning_rate: 0.01,
        ..Adam::default()
    });
    let mut last = f32::INFINITY;
    for _ in 0..300 {
        let out = model.forward_host(&x, Mode::Train).unwrap();
        last = criterion
            .compute(&out, BatchTargets::Labels(&labels), None)
            .unwrap();
        model.zero_grad().unwrap();
        model
            .backward(criterion.gradient(), criterion.grad_at())
            .unwrap();
        optimizer.step(&mut model).unwrap();
    }
    assert!(last < 0.1, "{last}");
}

kiln::model! {
    /// `TinyLm` one token at a time, its LSTMs stateful.
    pub struct TinyLmStep {
        input: tokens[1] of 11,
        embed: Embedding(11, 6),
        lstm1: Lstm(12, return_sequences = true, stateful = true),
        lstm2: Lstm(12, return_sequences = true, stateful = true),
        out: TimeDense(11, softmax),
    }
}

/// Generation one token at a time, the states carried, gives the probabilities the
/// windowed model gives at every step: nothing of the prefix is recomputed.
#[test]
fn a_stateful_step_model_follows_the_windowed_one() {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut lm = TinyLm::new(&cpu, 1, 3).unwrap();
    let mut step = TinyLmStep::new(&cpu, 1, 4).unwrap();
    let mut weights = Vec::new();
    lm.parameters(&mut |p| {
        weights.push((p.layer, p.name, cpu.to_host(p.value, p.shape.size())?));
        Ok(())
    })
    .unwrap();
    let mut copied = 0;
    step.visit_parameters(&mut |p| {
        let (_, _, values) = weights
            .iter()
            .find(|(l, n, _)| *l == p.layer && *n == p.name)
            .unwrap();
        copied += 1;
        cpu.upload(values, p.value)
    })
    .unwrap();
    assert_eq!(copied, weights.len());
    let ids = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
    let whole = lm
        .forward_host(&ids, Mode::Eval)
        .unwrap()
        .to_vec(&cpu)
        .unwrap();
    for (t, id) in ids.iter().enumerate() {
        let one = step
            .forward_host(&[*id], Mode::Eval)
            .unwrap()
            .to_vec(&cpu)
            .unwrap();
        for (a, b) in one.iter().zip(&whole[t * 11..(t + 1) * 11]) {
            assert!((a - b).abs() < 1e-6, "step {t}: {a} vs {b}");
        }
    }
    step.lstm1.reset_states();
    step.lstm2.reset_states();
    let again = step
        .forward_host(&ids[..1], Mode::Eval)
        .unwrap()
        .to_vec(&cpu)
        .unwrap();
    assert_eq!(&again[..], &whole[..11]);
}

kiln::model! {
    /// Every recurrent option at once: both directions, dropout on the inputs, a
    /// stacked GRU reading the concatenated sequence.
    pub struct BothWays {
        input: [6, 3],
        lstm: Lstm(8, return_sequences = true, bidirectional = true, dropout = 0.2),
        gru: Gru(4, bidirectional = true),
        out: Dense(2, softmax),
    }
}

/// Bidirectional layers with input dropout in `model!`: twice the width and the
/// weights, and a model of them trains, here on whether a sequence's first step is
/// positive, which a forward reading keeps only through six steps and the reverse
/// direction sees last.
#[test]
fn bidirectional_layers_with_dropout_train_in_a_model() {
    assert_eq!(BothWays::<Cpu>::OUTPUT_SHAPE, Shape::new(&[2]));
    // 2 * 4 * ((3 + 8) * 8 + 8) + 2 * 3 * ((16 + 4) * 4 + 2 * 4) + 8 * 2 + 2.
    assert_eq!(BothWays::<Cpu>::PARAMETERS, 768 + 528 + 18);
    let cpu = Cpu::with_threads(2).unwrap();
    let mut model = BothWays::new(&cpu, 16, 3).unwrap();
    let x: Vec<f32> = (0..16 * 18)
        .map(|i| ((i * 7919 % 97) as f32 / 48.0) - 1.0)
        .collect();
    let labels: Vec<u32> = x.chunks(18).map(|s| u32::from(s[0] > 0.0)).collect();
    let mut criterion = Criterion::new(
        Loss::sparse_categorical_crossentropy(),
        &cpu,
        16,
        BothWays::<Cpu>::OUTPUT_ACTIVATION,
    )
    .unwrap();
    let mut optimizer = Optimizer::new(Adam {
        learning_rate: 0.01,
        ..Adam::default()
    });
    let mut first = None;
    let mut last = f32::INFINITY;
    for _ in 0..200 {
        let out = model.forward_host(&x, Mode::Train).unwrap();
        last = criterion
            .compute(&out, BatchTargets::Labels(&labels), None)
            .unwrap();
        first.get_or_insert(last);
        model.zero_grad().unwrap();
        model
            .backward(criterion.gradient(), criterion.grad_at())
            .unwrap();
        optimizer.step(&mut model).unwrap();
    }
    let first = first.unwrap();
    assert!(last < 0.5 * first, "{first} -> {last}");
}
