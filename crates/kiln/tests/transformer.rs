//! A pre-norm Transformer block written with `model!`'s residual blocks against
//! PyTorch's `nn.TransformerEncoderLayer(norm_first=True, activation="gelu")` with the
//! same weights: output, input gradient and parameter gradients (numbers from
//! `crates/nn/tests/oracle/pytorch_transformer.py`).

#![allow(clippy::unwrap_used)]

#[allow(dead_code, clippy::excessive_precision)]
#[path = "../../nn/tests/oracle/pytorch_transformer.rs"]
mod expected;

use kiln::prelude::*;

kiln::model! {
    /// One causal pre-norm block of width 8, 2 heads, an MLP of 16.
    struct Block {
        input: [5, 8],
        attention: Residual {
            ln1: LayerNorm,
            attn: MultiHeadAttention(2, causal = true),
        },
        mlp: Residual {
            ln2: LayerNorm,
            fc: TimeDense(16, gelu),
            proj: TimeDense(8),
        },
    }
}

fn values(n: usize, freq: f64, salt: f64, scale: f64, f: fn(f64) -> f64) -> Vec<f32> {
    (0..n)
        .map(|i| (f(freq * i as f64 + salt) * scale) as f32)
        .collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what}[{i}]: kiln {g}, PyTorch {w}"
        );
    }
}

#[test]
fn block_matches_pytorch_transformer_encoder_layer() {
    let cpu = Cpu::with_threads(2).unwrap();
    let mut model = Block::new(&cpu, 2, 0).unwrap();
    // The script's salts, by (layer, parameter).
    let salt = |layer: &str, name: &str| match (layer, name) {
        (_, "weight") if layer.ends_with("ln1") || layer.ends_with("ln2") => 2.0,
        (_, "bias") if layer.ends_with("ln1") || layer.ends_with("ln2") => 3.0,
        (_, "qkv_weight") => 4.0,
        (_, "qkv_bias") => 5.0,
        (_, "out_weight") => 6.0,
        (_, "out_bias") => 7.0,
        (l, "weight") if l.ends_with("fc") => 8.0,
        (l, "weight") if l.ends_with("proj") => 9.0,
        (l, "bias") if l.ends_with("fc") => 10.0,
        _ => 11.0,
    };
    model
        .visit_parameters(&mut |p| {
            let v = values(p.shape.size(), 0.23, salt(p.layer, p.name), 0.5, f64::cos);
            cpu.upload(&v, p.value)
        })
        .unwrap();
    let x = Tensor::<Rank2<5, 8>, Cpu>::from_slice(&cpu, 2, &values(80, 0.37, 1.0, 0.9, f64::sin))
        .unwrap();
    let u = Tensor::<Rank2<5, 8>, Cpu>::from_slice(&cpu, 2, &values(80, 0.11, 7.0, 1.0, f64::sin))
        .unwrap();
    let y = model
        .forward(&x, Mode::Train)
        .unwrap()
        .to_vec(&cpu)
        .unwrap();
    assert_close("output", &y, expected::BLOCK_Y);

    let mut dx = Tensor::<Rank2<5, 8>, Cpu>::zeros(&cpu, 2).unwrap();
    model.zero_grad().unwrap();
    model
        .backward_to_input(&u, GradAt::Output, &mut dx)
        .unwrap();
    assert_close(
        "input gradient",
        &dx.to_vec(&cpu).unwrap(),
        expected::BLOCK_DX,
    );
    let mut checked = 0;
    model
        .parameters(&mut |p| {
            let want = match (p.layer, p.name) {
                (l, "weight") if l.ends_with("fc") => expected::BLOCK_DFC1_WEIGHT,
                (_, "qkv_weight") => expected::BLOCK_DQKV_WEIGHT,
                (l, "weight") if l.ends_with("ln1") => expected::BLOCK_DLN1_WEIGHT,
                _ => return Ok(()),
            };
            assert_close(&p.key(), &cpu.to_host(p.grad, p.shape.size())?, want);
            checked += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(checked, 3);
}
