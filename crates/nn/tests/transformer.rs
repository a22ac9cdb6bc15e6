//! `LayerNorm`, `MultiHeadAttention` and `PositionEmbedding`: gradients against
//! central finite differences, and values and gradients against PyTorch with the same
//! weights (`oracle/pytorch_transformer.py` wrote the expected numbers).

#![allow(clippy::unwrap_used)]

// The block's numbers are read by crates/kiln/tests/transformer.rs.
#[allow(dead_code)]
#[path = "oracle/pytorch_transformer.rs"]
mod oracle;

use kiln_kernels::ops::InputGrad;
use kiln_kernels::rng::Rng;
use kiln_kernels::{Cpu, GradAt, ParamMut, Storage};
use kiln_nn::{Backward, Error, Layer, LayerNorm, Mode, MultiHeadAttention, PositionEmbedding};
use kiln_shape::{AttentionSpec, LayerNormSpec, PositionEmbeddingSpec, Shape, Spec};

const BATCH: usize = 2;

fn values(n: usize, freq: f64, salt: f64, scale: f64, f: fn(f64) -> f64) -> Vec<f32> {
    (0..n)
        .map(|i| (f(freq * i as f64 + salt) * scale) as f32)
        .collect()
}

/// The oracle's input, weights and output gradient.
fn x_of(n: usize) -> Vec<f32> {
    values(n, 0.37, 1.0, 0.9, f64::sin)
}
fn w_of(n: usize, salt: f64) -> Vec<f32> {
    values(n, 0.23, salt, 0.5, f64::cos)
}
fn u_of(n: usize) -> Vec<f32> {
    values(n, 0.11, 7.0, 1.0, f64::sin)
}

/// A layer's output, its input gradient and every parameter's gradient by name.
type Gradients = (Vec<f32>, Vec<f32>, Vec<(String, Vec<f32>)>);

/// A layer built on the CPU for `BATCH` samples of `input`.
struct Harness<L> {
    cpu: Cpu,
    layer: L,
    out_len: usize,
}

impl<L: Layer<Cpu>> Harness<L> {
    fn new(spec: &L::Spec, input: Shape) -> Self {
        let cpu = Cpu::with_threads(2).unwrap();
        let layer = L::build(&cpu, spec, input, BATCH, &mut Rng::new(5)).unwrap();
        let out_len = spec.output_for(&input).unwrap().size() * BATCH;
        Self {
            cpu,
            layer,
            out_len,
        }
    }

    /// Visits parameter `name` with `f(values) -> new values`.
    fn with_param(&mut self, name: &str, f: &mut dyn FnMut(Vec<f32>) -> Option<Vec<f32>>) {
        let cpu = self.cpu.clone();
        self.layer
            .visit_parameters("layer", &mut |p: ParamMut<'_, Cpu>| {
                if p.name == name {
                    let now = cpu.to_host(p.value, p.shape.size())?;
                    if let Some(new) = f(now) {
                        cpu.upload(&new, p.value)?;
                    }
                }
                Ok(())
            })
            .unwrap();
    }

    fn set(&mut self, name: &str, v: &[f32]) {
        self.with_param(name, &mut |_| Some(v.to_vec()));
    }

    fn get(&mut self, name: &str) -> Vec<f32> {
        let mut out = Vec::new();
        self.with_param(name, &mut |v| {
            out = v;
            None
        });
        out
    }

    /// `sum(y * u)`.
    fn loss(&mut self, x: &[f32], u: &[f32]) -> f64 {
        let xb = self.cpu.alloc_from(x).unwrap();
        let mut y = self.cpu.alloc(self.out_len).unwrap();
        self.layer
            .forward(&self.cpu, &xb, &mut y, BATCH, Mode::Train)
            .unwrap();
        let y = self.cpu.to_host(&y, self.out_len).unwrap();
        y.iter()
            .zip(u)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum()
    }

    /// `y`, `dx` (added to `dx0` when given) and every parameter's gradient.
    fn gradients(&mut self, x: &[f32], u: &[f32], dx0: Option<&[f32]>) -> Gradients {
        let cpu = self.cpu.clone();
        self.layer.zero_grad(&cpu).unwrap();
        let xb = cpu.alloc_from(x).unwrap();
        let mut y = cpu.alloc(self.out_len).unwrap();
        self.layer
            .forward(&cpu, &xb, &mut y, BATCH, Mode::Train)
            .unwrap();
        let mut dy = cpu.alloc_from(u).unwrap();
        let mut dx = cpu
            .alloc_from(dx0.unwrap_or(&vec![f32::NAN; x.len()]))
            .unwrap();
        let dx_pass = match dx0 {
            Some(_) => InputGrad::add_to(&mut dx),
            None => InputGrad::write(&mut dx),
        };
        let pass = Backward {
            x: Some(&xb),
            y: Some(&y),
            dy: &mut dy,
            dx: Some(dx_pass),
            batch: BATCH,
            at: GradAt::Output,
            through_relu_below: false,
        };
        self.layer.backward(&cpu, pass).unwrap();
        let mut grads = Vec::new();
        self.layer
            .parameters("layer", &mut |p| {
                grads.push((p.name.to_string(), cpu.to_host(p.grad, p.shape.size())?));
                Ok(())
            })
            .unwrap();
        (
            cpu.to_host(&y, self.out_len).unwrap(),
            cpu.to_host(&dx, x.len()).unwrap(),
            grads,
        )
    }

    /// Every gradient against central differences of `sum(y * u)`.
    fn check_differences(&mut self, x: &[f32], u: &[f32]) {
        const H: f32 = 1e-2;
        let (_, dx, grads) = self.gradients(x, u, None);
        let close = |what: &str, got: f32, fd: f64| {
            let fd = fd as f32;
            assert!(
                (got - fd).abs() < 3e-3 * (1.0 + fd.abs()),
                "{what}: {got} vs {fd}"
            );
        };
        let mut xp = x.to_vec();
        for i in 0..x.len() {
            xp[i] = x[i] + H;
            let plus = self.loss(&xp, u);
            xp[i] = x[i] - H;
            let minus = self.loss(&xp, u);
            xp[i] = x[i];
            close(
                &format!("dx[{i}]"),
                dx[i],
                (plus - minus) / f64::from(2.0 * H),
            );
        }
        for (name, grad) in grads {
            let mut v = self.get(&name);
            for i in 0..v.len() {
                let old = v[i];
                v[i] = old + H;
                self.set(&name, &v);
                let plus = self.loss(x, u);
                v[i] = old - H;
                self.set(&name, &v);
                let minus = self.loss(x, u);
                v[i] = old;
                self.set(&name, &v);
                close(
                    &format!("{name}[{i}]"),
                    grad[i],
                    (plus - minus) / f64::from(2.0 * H),
                );
            }
        }
        // Accumulating adds the same gradient to what the buffer held.
        let ones = vec![1.0; x.len()];
        let (_, added, _) = self.gradients(x, u, Some(&ones));
        for (a, d) in added.iter().zip(&dx) {
            assert!((a - 1.0 - d).abs() < 1e-5, "accumulated {a} vs {d} + 1");
        }
    }
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

const SEQ: [usize; 2] = [5, 8];

fn attention(heads: usize, causal: bool, bias: bool) -> AttentionSpec {
    AttentionSpec {
        heads,
        causal,
        bias,
    }
}

#[test]
fn layer_norm_gradients_match_finite_differences() {
    let mut h = Harness::<LayerNorm<Cpu>>::new(&LayerNormSpec { epsilon: 1e-5 }, Shape::new(&SEQ));
    h.set("weight", &w_of(8, 2.0));
    h.set("bias", &w_of(8, 3.0));
    h.check_differences(&x_of(80), &u_of(80));
}

#[test]
fn layer_norm_matches_pytorch() {
    let mut h = Harness::<LayerNorm<Cpu>>::new(&LayerNormSpec { epsilon: 1e-5 }, Shape::new(&SEQ));
    h.set("weight", &w_of(8, 2.0));
    h.set("bias", &w_of(8, 3.0));
    let (y, dx, grads) = h.gradients(&x_of(80), &u_of(80), None);
    assert_close("y", &y, oracle::LN_Y, 1e-5);
    assert_close("dx", &dx, oracle::LN_DX, 1e-4);
    assert_close("dweight", &grads[0].1, oracle::LN_DWEIGHT, 1e-5);
    assert_close("dbias", &grads[1].1, oracle::LN_DBIAS, 1e-5);
}

fn load_attention(h: &mut Harness<MultiHeadAttention<Cpu>>) {
    h.set("qkv_weight", &w_of(8 * 24, 4.0));
    h.set("qkv_bias", &w_of(24, 5.0));
    h.set("out_weight", &w_of(64, 6.0));
    h.set("out_bias", &w_of(8, 7.0));
}

#[test]
fn attention_gradients_match_finite_differences() {
    for (causal, bias) in [(false, true), (true, true), (true, false)] {
        let mut h =
            Harness::<MultiHeadAttention<Cpu>>::new(&attention(2, causal, bias), Shape::new(&SEQ));
        load_attention(&mut h);
        h.check_differences(&x_of(80), &u_of(80));
    }
}

#[test]
fn attention_matches_pytorch_multihead_attention() {
    let cases = [
        (
            false,
            [
                oracle::MHA_FULL_Y,
                oracle::MHA_FULL_DX,
                oracle::MHA_FULL_DQKV_WEIGHT,
                oracle::MHA_FULL_DQKV_BIAS,
                oracle::MHA_FULL_DOUT_WEIGHT,
                oracle::MHA_FULL_DOUT_BIAS,
            ],
        ),
        (
            true,
            [
                oracle::MHA_CAUSAL_Y,
                oracle::MHA_CAUSAL_DX,
                oracle::MHA_CAUSAL_DQKV_WEIGHT,
                oracle::MHA_CAUSAL_DQKV_BIAS,
                oracle::MHA_CAUSAL_DOUT_WEIGHT,
                oracle::MHA_CAUSAL_DOUT_BIAS,
            ],
        ),
    ];
    for (causal, [y_want, dx_want, dw, db, dwo, dbo]) in cases {
        let mut h =
            Harness::<MultiHeadAttention<Cpu>>::new(&attention(2, causal, true), Shape::new(&SEQ));
        load_attention(&mut h);
        let (y, dx, grads) = h.gradients(&x_of(80), &u_of(80), None);
        assert_close("y", &y, y_want, 1e-5);
        assert_close("dx", &dx, dx_want, 1e-4);
        let names: Vec<&str> = grads.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["qkv_weight", "qkv_bias", "out_weight", "out_bias"]);
        for ((name, got), want) in grads.iter().zip([dw, db, dwo, dbo]) {
            assert_close(name, got, want, 1e-4);
        }
    }
}

#[test]
fn heads_that_do_not_divide_the_width_fail_the_build() {
    let cpu = Cpu::with_threads(1).unwrap();
    let err = MultiHeadAttention::build(
        &cpu,
        &attention(6, true, true),
        Shape::new(&[64, 128]),
        1,
        &mut Rng::new(1),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    assert!(
        err.to_string().contains("use 4 or 8 heads, or width 132"),
        "{err}"
    );
}

#[test]
fn position_embeddings_add_their_rows_and_differentiate() {
    for sinusoidal in [false, true] {
        let spec = PositionEmbeddingSpec {
            context: 7,
            sinusoidal,
        };
        let mut h = Harness::<PositionEmbedding<Cpu>>::new(&spec, Shape::new(&SEQ));
        let x = x_of(80);
        let (y, _, grads) = h.gradients(&x, &u_of(80), None);
        let table = if sinusoidal {
            // sin(t / 10000^(2i / 8)) and its cosine, by hand for position 3.
            let t = 3.0f64;
            let want: Vec<f32> = (0..8)
                .map(|c| {
                    let a = t / 10_000f64.powf((c / 2 * 2) as f64 / 8.0);
                    (if c % 2 == 0 { a.sin() } else { a.cos() }) as f32
                })
                .collect();
            for b in 0..BATCH {
                let r = (b * 5 + 3) * 8;
                let got: Vec<f32> = (0..8).map(|c| y[r + c] - x[r + c]).collect();
                assert_close("sinusoid", &got, &want, 1e-6);
            }
            assert!(grads.is_empty());
            continue;
        } else {
            h.get("weight")
        };
        for (i, (a, b)) in y.iter().zip(&x).enumerate() {
            assert!((a - b - table[i % 40]).abs() < 1e-6);
        }
        assert_eq!(table.len(), 56);
        h.check_differences(&x, &u_of(80));
    }
}

#[test]
fn a_sequence_longer_than_the_table_fails_the_build() {
    let cpu = Cpu::with_threads(1).unwrap();
    let spec = PositionEmbeddingSpec {
        context: 4,
        sinusoidal: false,
    };
    let err =
        PositionEmbedding::build(&cpu, &spec, Shape::new(&SEQ), 1, &mut Rng::new(1)).unwrap_err();
    assert!(
        err.to_string()
            .contains("longer than the position table's 4 rows"),
        "{err}"
    );
}
