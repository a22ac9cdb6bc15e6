//! The Transformer kinds as ONNX operators: `LayerNorm` as `LayerNormalization`
//! (opset 17), `PositionEmbedding` as the `Add` of its table's first rows, and
//! `MultiHeadAttention` as its projections (`MatMul`, `Add`), the heads split by
//! `Reshape` and `Transpose`, and `softmax(q kᵀ / sqrt(d) + mask) v` written out
//! (`MatMul`, `Mul`, `Add`, `Softmax`).

use kiln_shape::{AttentionSpec, LayerNormSpec, PositionEmbeddingSpec, Shape};

use crate::builder::{Attr, ints};
use crate::export::{Exporter, Form, Val};
use crate::{Error, Result};

fn sequence(name: &str, shape: Shape) -> Result<(usize, usize)> {
    shape.as_sequence().ok_or_else(|| Error::Unsupported {
        layer: name.to_string(),
        kind: format!("a layer over {shape}, not a sequence"),
    })
}

fn val(name: String, shape: Shape) -> Val {
    Val {
        name,
        form: Form::Kiln,
        shape,
    }
}

/// `LayerNormalization` over the last axis.
pub(super) fn layer_norm(
    ex: &mut Exporter,
    name: &str,
    spec: &LayerNormSpec,
    x: &Val,
    shape: Shape,
) -> Result<Val> {
    let width = shape.dims().last().copied().unwrap_or(1);
    let (_, gamma) = ex.tensor(name, "weight")?.clone();
    let (_, beta) = ex.tensor(name, "bias")?.clone();
    let g = ex.b.constant(
        &format!("{name}.weight"),
        &[width],
        &gamma[..width.min(gamma.len())],
    );
    let b = ex.b.constant(
        &format!("{name}.bias"),
        &[width],
        &beta[..width.min(beta.len())],
    );
    let y = ex.b.node(
        "LayerNormalization",
        name,
        &[&x.name, &g, &b],
        name,
        vec![
            ("axis", Attr::Int(-1)),
            ("epsilon", Attr::Float(spec.epsilon)),
        ],
    );
    Ok(val(y, shape))
}

/// `x + table[..time]`, the table broadcast over the batch.
pub(super) fn position_embedding(
    ex: &mut Exporter,
    name: &str,
    spec: &PositionEmbeddingSpec,
    x: &Val,
    shape: Shape,
) -> Result<Val> {
    let (time, width) = sequence(name, shape)?;
    let rows = if spec.sinusoidal {
        PositionEmbeddingSpec::sinusoids(time, width)
    } else {
        let (_, table) = ex.tensor(name, "weight")?;
        table.iter().copied().take(time * width).collect()
    };
    let table =
        ex.b.constant(&format!("{name}.weight"), &[time, width], &rows);
    let y = ex.b.node("Add", name, &[&x.name, &table], name, vec![]);
    Ok(val(y, shape))
}

/// The columns `from..from + cols` of a `[rows, all]` matrix.
fn columns(m: &[f32], all: usize, from: usize, cols: usize) -> Vec<f32> {
    m.chunks_exact(all.max(1))
        .flat_map(|row| row[from..from + cols].iter().copied())
        .collect()
}

/// Multi-head self-attention, written out.
pub(super) fn attention(
    ex: &mut Exporter,
    name: &str,
    spec: &AttentionSpec,
    x: &Val,
    shape: Shape,
) -> Result<Val> {
    let (time, width) = sequence(name, shape)?;
    let heads = spec.heads.max(1);
    let d = width / heads;
    let (_, w) = ex.tensor(name, "qkv_weight")?.clone();
    let (_, wo) = ex.tensor(name, "out_weight")?.clone();
    let bias = ex.optional_tensor(name, "qkv_bias").map(|t| t.1.clone());
    let out_bias = ex.optional_tensor(name, "out_bias").map(|t| t.1.clone());
    let split = ex.b.int_constant(
        &format!("{name}/heads"),
        &[0, ints(&[time])[0], ints(&[heads])[0], ints(&[d])[0]],
    );
    let mut parts = Vec::new();
    for (i, part) in ["query", "key", "value"].iter().enumerate() {
        let wp = ex.b.constant(
            &format!("{name}.{part}_weight"),
            &[width, width],
            &columns(&w, 3 * width, i * width, width),
        );
        let mut v = ex.b.node(
            "MatMul",
            &format!("{name}/{part}"),
            &[&x.name, &wp],
            &format!("{name}/{part}"),
            vec![],
        );
        if let Some(b) = &bias {
            let bp = ex.b.constant(
                &format!("{name}.{part}_bias"),
                &[width],
                &b[i * width..(i + 1) * width],
            );
            v = ex.b.node(
                "Add",
                &format!("{name}/{part}_bias"),
                &[&v, &bp],
                &format!("{name}/{part}_biased"),
                vec![],
            );
        }
        let v = ex.b.node(
            "Reshape",
            &format!("{name}/{part}_heads"),
            &[&v, &split],
            &format!("{name}/{part}_heads"),
            vec![],
        );
        // Queries and values as [batch, heads, time, d]; keys as [batch, heads, d, time].
        let perm = if i == 1 { [0, 2, 3, 1] } else { [0, 2, 1, 3] };
        parts.push(ex.b.node(
            "Transpose",
            &format!("{name}/{part}_t"),
            &[&v],
            &format!("{name}/{part}_t"),
            vec![("perm", Attr::Ints(perm.to_vec()))],
        ));
    }
    let scores = ex.b.node(
        "MatMul",
        &format!("{name}/scores"),
        &[&parts[0], &parts[1]],
        &format!("{name}/scores"),
        vec![],
    );
    let scale =
        ex.b.constant(&format!("{name}/scale"), &[], &[1.0 / (d as f32).sqrt()]);
    let mut scores = ex.b.node(
        "Mul",
        &format!("{name}/scaled"),
        &[&scores, &scale],
        &format!("{name}/scaled"),
        vec![],
    );
    if spec.causal {
        let mask: Vec<f32> = (0..time * time)
            .map(|i| {
                if i % time > i / time {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = ex.b.constant(&format!("{name}/mask"), &[time, time], &mask);
        scores = ex.b.node(
            "Add",
            &format!("{name}/masked"),
            &[&scores, &mask],
            &format!("{name}/masked"),
            vec![],
        );
    }
    let p = ex.b.node(
        "Softmax",
        &format!("{name}/softmax"),
        &[&scores],
        &format!("{name}/softmax"),
        vec![("axis", Attr::Int(-1))],
    );
    let o = ex.b.node(
        "MatMul",
        &format!("{name}/mix"),
        &[&p, &parts[2]],
        &format!("{name}/mix"),
        vec![],
    );
    let o = ex.b.node(
        "Transpose",
        &format!("{name}/merge_t"),
        &[&o],
        &format!("{name}/merge_t"),
        vec![("perm", Attr::Ints(vec![0, 2, 1, 3]))],
    );
    let merged = ex.b.int_constant(
        &format!("{name}/merged"),
        &[0, ints(&[time])[0], ints(&[width])[0]],
    );
    let o = ex.b.node(
        "Reshape",
        &format!("{name}/merge"),
        &[&o, &merged],
        &format!("{name}/merge"),
        vec![],
    );
    let wo =
        ex.b.constant(&format!("{name}.out_weight"), &[width, width], &wo);
    let out = if out_bias.is_some() {
        format!("{name}/out")
    } else {
        name.to_string()
    };
    let mut y =
        ex.b.node("MatMul", &format!("{name}/out"), &[&o, &wo], &out, vec![]);
    if let Some(b) = out_bias {
        let b = ex.b.constant(&format!("{name}.out_bias"), &[width], &b);
        y = ex.b.node("Add", name, &[&y, &b], name, vec![]);
    }
    Ok(val(y, shape))
}
