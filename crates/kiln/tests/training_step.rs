//! A model that ends in softmax, trained with sparse categorical cross-entropy on its
//! probabilities, gets exactly the gradients of the same model ending in raw logits
//! with `from_logits`: the fused `p - y` path, even where the logits are huge.

#![allow(clippy::unwrap_used)]

use kiln::prelude::*;

kiln::model! {
    /// Ends in softmax, as the seed's model does.
    pub struct WithSoftmax {
        input: [6],
        fc: Dense(8, tanh),
        out: Dense(4, softmax),
    }
}

kiln::model! {
    /// The same network, ending in logits.
    pub struct WithLogits {
        input: [6],
        fc: Dense(8, tanh),
        out: Dense(4),
    }
}

fn gradients<M: Model<Cpu>>(model: &mut M) -> Vec<f32> {
    let cpu = model.backend().clone();
    let mut all = Vec::new();
    model
        .parameters(&mut |p| {
            all.extend(cpu.to_host(p.grad, p.shape.size())?);
            Ok(())
        })
        .unwrap();
    all
}

fn step<M: Model<Cpu, Input = Rank1<6>, Output = Rank1<4>>>(
    model: &mut M,
    loss: Loss,
    x: &[f32],
    labels: &[u32],
) -> (f32, Vec<f32>) {
    let mut criterion = Criterion::new(
        loss,
        model.backend(),
        model.max_batch(),
        M::OUTPUT_ACTIVATION,
    )
    .unwrap();
    let output = model.forward_host(x, Mode::Train).unwrap();
    let value = criterion
        .compute(&output, BatchTargets::Labels(labels), None)
        .unwrap();
    model.zero_grad().unwrap();
    model
        .backward(criterion.gradient(), criterion.grad_at())
        .unwrap();
    (value, gradients(model))
}

#[test]
fn the_fused_gradient_equals_the_from_logits_gradient() {
    let cpu = Cpu::with_threads(1).unwrap();
    let labels = [0, 3, 1, 2, 3];
    for scale in [1.0f32, 300.0] {
        let x: Vec<f32> = (0..30).map(|i| (i as f32 * 0.7).sin() * scale).collect();
        let mut fused = WithSoftmax::new(&cpu, 5, 11).unwrap();
        let mut logits = WithLogits::new(&cpu, 5, 11).unwrap();
        let scce = Loss::sparse_categorical_crossentropy();
        let (v1, g1) = step(&mut fused, scce.clone(), &x, &labels);
        let (v2, g2) = step(&mut logits, scce.from_logits(true), &x, &labels);
        assert!(g1.iter().all(|g| g.is_finite()), "scale {scale}");
        for (i, (a, b)) in g1.iter().zip(&g2).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "scale {scale}, grad {i}: {a} vs {b}"
            );
        }
        if scale == 1.0 {
            assert!((v1 - v2).abs() < 1e-5, "{v1} vs {v2}");
        } else {
            // Probabilities that underflow are clipped at 1e-7, as in Keras.
            assert!(v1 <= v2 && v1 <= -(1e-7f32.ln()) + 1e-3, "{v1} vs {v2}");
        }
    }
}

#[test]
fn adam_and_the_loss_fit_a_small_problem() {
    let cpu = Cpu::with_threads(1).unwrap();
    let mut model = WithSoftmax::new(&cpu, 64, 5).unwrap();
    let mut criterion = model
        .criterion(Loss::sparse_categorical_crossentropy())
        .unwrap();
    let mut optimizer = Optimizer::new(Adam::default().learning_rate(1e-2));
    // Four separable classes: the label is the quadrant of (x0, x1).
    let x: Vec<f32> = (0..64 * 6)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let labels: Vec<u32> = x
        .chunks(6)
        .map(|s| u32::from(s[0] > 0.0) * 2 + u32::from(s[1] > 0.0))
        .collect();
    let mut losses = Vec::new();
    for _ in 0..200 {
        let output = model.forward_host(&x, Mode::Train).unwrap();
        losses.push(
            criterion
                .compute(&output, BatchTargets::Labels(&labels), None)
                .unwrap(),
        );
        model.zero_grad().unwrap();
        model
            .backward(criterion.gradient(), criterion.grad_at())
            .unwrap();
        optimizer.step(&mut model).unwrap();
    }
    assert!(losses[0] > 1.0, "{}", losses[0]);
    assert!(losses[199] < 0.2, "the loss fell only to {}", losses[199]);
    assert_eq!(optimizer.iterations(), 200);
}
