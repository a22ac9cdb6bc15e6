//! Each layer kind as ONNX operators. A kind with no lowering here is an error that
//! names the layer; `every_kind_has_a_lowering` keeps the list whole.

use std::any::Any;

use kiln_shape::{
    Activation, BatchNormSpec, Conv2dSpec, DenseSpec, DropoutSpec, FlattenSpec,
    GlobalAvgPool2dSpec, IdentitySpec, Padding, Pool2dSpec, PoolMode, Shape, Spec, conv_output_len,
    same_padding_before,
};

mod sequence;

use crate::builder::{Attr, ints};
use crate::export::{Exporter, Form, Val};
use crate::{Error, Result};

mod conv1d;
mod transformer;

/// Layer `name` of spec `spec` applied to `x`, producing kiln shape `shape`.
pub(crate) fn layer(
    ex: &mut Exporter,
    name: &str,
    spec: &dyn Spec,
    x: &Val,
    shape: Shape,
) -> Result<Val> {
    let any: &dyn Any = spec;
    let out = Val {
        name: String::new(),
        form: x.form,
        shape,
    };
    if let Some(s) = any.downcast_ref::<DenseSpec>() {
        return dense(ex, name, s, x, shape);
    }
    if let Some(s) = any.downcast_ref::<Conv2dSpec>() {
        return conv2d(ex, name, s, x, shape);
    }
    if let Some(s) = any.downcast_ref::<Pool2dSpec>() {
        return Ok(pool2d(ex, name, s, x, shape));
    }
    if let Some(s) = any.downcast_ref::<BatchNormSpec>() {
        return batch_norm(ex, name, s, x);
    }
    if let Some(s) = any.downcast_ref::<kiln_shape::Conv1dSpec>() {
        return conv1d::conv1d(ex, name, s, x, shape);
    }
    if let Some(s) = any.downcast_ref::<kiln_shape::MaxPool1dSpec>() {
        return conv1d::max_pool1d(ex, name, s, x, shape);
    }
    if let Some(s) = any.downcast_ref::<kiln_shape::GlobalPool1dSpec>() {
        return conv1d::global_pool1d(ex, name, s, x, shape);
    }
    if any.is::<GlobalAvgPool2dSpec>() {
        let x = ex.as_nchw(x);
        let pooled = ex.b.node(
            "GlobalAveragePool",
            name,
            &[&x.name],
            &format!("{name}/pooled"),
            vec![],
        );
        let flat = ex.b.node(
            "Flatten",
            &format!("{name}/flatten"),
            &[&pooled],
            name,
            vec![("axis", Attr::Int(1))],
        );
        return Ok(Val {
            name: flat,
            form: Form::Kiln,
            ..out
        });
    }
    if any.is::<FlattenSpec>() {
        return Ok(flatten(ex, name, x, shape));
    }
    if any.is::<IdentitySpec>() {
        let y = ex.b.node("Identity", name, &[&x.name], name, vec![]);
        return Ok(Val { name: y, ..out });
    }
    if let Some(s) = any.downcast_ref::<DropoutSpec>() {
        // Inference: the identity. The node keeps the layer visible, and its rate.
        let ratio = ex.b.constant(&format!("{name}.ratio"), &[], &[s.rate]);
        let y = ex.b.node("Dropout", name, &[&x.name, &ratio], name, vec![]);
        return Ok(Val { name: y, ..out });
    }
    if any.is::<kiln_shape::EmbeddingSpec>() {
        return sequence::embedding(ex, name, x, shape);
    }
    if let Some(s) = any.downcast_ref::<kiln_shape::RecurrentSpec>() {
        return sequence::recurrent(ex, name, s, x, shape);
    }
    if let Some(s) = any.downcast_ref::<kiln_shape::TimeDenseSpec>() {
        return sequence::time_dense(ex, name, s, x, shape);
    }
    if let Some(s) = any.downcast_ref::<kiln_shape::LayerNormSpec>() {
        return transformer::layer_norm(ex, name, s, x, shape);
    }
    if let Some(s) = any.downcast_ref::<kiln_shape::AttentionSpec>() {
        return transformer::attention(ex, name, s, x, shape);
    }
    if let Some(s) = any.downcast_ref::<kiln_shape::PositionEmbeddingSpec>() {
        return transformer::position_embedding(ex, name, s, x, shape);
    }
    if let Some(&a) = any.downcast_ref::<Activation>() {
        if a == Activation::Linear {
            let y = ex.b.node("Identity", name, &[&x.name], name, vec![]);
            return Ok(Val { name: y, ..out });
        }
        return Ok(ex.activation(x, a, name, name));
    }
    Err(Error::Unsupported {
        layer: name.to_string(),
        kind: spec.kind_name().to_string(),
    })
}

/// The value a layer's main op writes: the layer's name, or its pre-activation's
/// when an activation follows.
fn pre_activation(name: &str, activation: Activation) -> String {
    if activation == Activation::Linear {
        name.to_string()
    } else {
        format!("{name}/linear")
    }
}

/// `Gemm(x, weight, bias)`; a vector in `c, h, w` order takes the weight's rows in
/// that order (the transpose folded into the weights).
fn dense(ex: &mut Exporter, name: &str, spec: &DenseSpec, x: &Val, shape: Shape) -> Result<Val> {
    let (dims, weight) = ex.tensor(name, "weight")?.clone();
    let (_, bias) = ex.tensor(name, "bias")?.clone();
    let x = match x.form {
        Form::Nchw => ex.as_kiln(x),
        _ => x.clone(),
    };
    let weight = match x.form {
        Form::ChwVector(h, w, c) => {
            let units = spec.units;
            let mut rows = vec![0.0; weight.len()];
            for y in 0..h {
                for xx in 0..w {
                    for ch in 0..c {
                        let kiln = ((y * w + xx) * c + ch) * units;
                        let onnx = ((ch * h + y) * w + xx) * units;
                        rows[onnx..onnx + units].copy_from_slice(&weight[kiln..kiln + units]);
                    }
                }
            }
            rows
        }
        _ => weight,
    };
    let w = ex.b.constant(&format!("{name}.weight"), &dims, &weight);
    let b = ex.b.constant(&format!("{name}.bias"), &[spec.units], &bias);
    let pre = pre_activation(name, spec.activation);
    let y = ex.b.node("Gemm", name, &[&x.name, &w, &b], &pre, vec![]);
    let y = Val {
        name: y,
        form: Form::Kiln,
        shape,
    };
    Ok(ex.activation(
        &y,
        spec.activation,
        &format!("{name}/{}", spec.activation.name()),
        name,
    ))
}

/// ONNX's `pads` (`[top, left, bottom, right]`) for a window over an `(h, w)` image:
/// TensorFlow's `same`, the extra row or column after.
fn pads(
    image: (usize, usize),
    window: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
) -> Vec<i64> {
    let axis = |input: usize, k: usize, s: usize| {
        let before = same_padding_before(input, k, s, padding);
        let out = conv_output_len(input, k, s, padding).unwrap_or(0);
        let after = ((out.saturating_sub(1)) * s + k).saturating_sub(input + before);
        (before, after)
    };
    let (top, bottom) = axis(image.0, window.0, stride.0);
    let (left, right) = axis(image.1, window.1, stride.1);
    ints(&[top, left, bottom, right])
}

/// `Conv(x, weight, bias)` on NCHW, the kernel turned from kiln's `[kh, kw, in,
/// out]` to ONNX's `[out, in, kh, kw]`.
fn conv2d(ex: &mut Exporter, name: &str, spec: &Conv2dSpec, x: &Val, shape: Shape) -> Result<Val> {
    let x = ex.as_nchw(x);
    let (h, w, _) = x.shape.as_image().ok_or_else(|| Error::Graph {
        node: name.to_string(),
    })?;
    let (_, weight) = ex.tensor(name, "weight")?.clone();
    let (_, bias) = ex.tensor(name, "bias")?.clone();
    let (kh, kw) = spec.kernel;
    let out = spec.filters;
    let inp = weight.len() / (kh * kw * out).max(1);
    let mut oihw = vec![0.0; weight.len()];
    for i in 0..kh {
        for j in 0..kw {
            for c in 0..inp {
                for o in 0..out {
                    oihw[((o * inp + c) * kh + i) * kw + j] =
                        weight[((i * kw + j) * inp + c) * out + o];
                }
            }
        }
    }
    let wt =
        ex.b.constant(&format!("{name}.weight"), &[out, inp, kh, kw], &oihw);
    let b = ex.b.constant(&format!("{name}.bias"), &[out], &bias);
    let pre = pre_activation(name, spec.activation);
    let attributes = vec![
        ("kernel_shape", Attr::Ints(ints(&[kh, kw]))),
        ("strides", Attr::Ints(ints(&[spec.stride.0, spec.stride.1]))),
        (
            "pads",
            Attr::Ints(pads((h, w), spec.kernel, spec.stride, spec.padding)),
        ),
    ];
    let y =
        ex.b.node("Conv", name, &[&x.name, &wt, &b], &pre, attributes);
    let y = Val {
        name: y,
        form: Form::Nchw,
        shape,
    };
    Ok(ex.activation(
        &y,
        spec.activation,
        &format!("{name}/{}", spec.activation.name()),
        name,
    ))
}

/// `MaxPool` or `AveragePool` (of the cells inside the image, as kiln averages).
fn pool2d(ex: &mut Exporter, name: &str, spec: &Pool2dSpec, x: &Val, shape: Shape) -> Val {
    let x = ex.as_nchw(x);
    let (h, w, _) = x.shape.as_image().unwrap_or((0, 0, 0));
    let mut attributes = vec![
        (
            "kernel_shape",
            Attr::Ints(ints(&[spec.size.0, spec.size.1])),
        ),
        ("strides", Attr::Ints(ints(&[spec.stride.0, spec.stride.1]))),
        (
            "pads",
            Attr::Ints(pads((h, w), spec.size, spec.stride, spec.padding)),
        ),
    ];
    let op = match spec.mode {
        PoolMode::Max => "MaxPool",
        PoolMode::Avg => {
            attributes.push(("count_include_pad", Attr::Int(0)));
            "AveragePool"
        }
    };
    let y = ex.b.node(op, name, &[&x.name], name, attributes);
    Val {
        name: y,
        form: Form::Nchw,
        shape,
    }
}

/// `BatchNormalization` with the running statistics where the channels are ONNX's
/// axis 1 (NCHW images, vectors, whose features a `c, h, w` order permutes along
/// with the statistics); else (a sequence's features, last) the same arithmetic
/// folded into one scale and one shift.
fn batch_norm(ex: &mut Exporter, name: &str, spec: &BatchNormSpec, x: &Val) -> Result<Val> {
    let (_, mean) = ex.tensor(name, "running_mean")?.clone();
    let (_, var) = ex.tensor(name, "running_var")?.clone();
    let channels = mean.len();
    let gamma = match ex.optional_tensor(name, "weight") {
        Some((_, v)) if spec.scale => v.clone(),
        _ => vec![1.0; channels],
    };
    let beta = match ex.optional_tensor(name, "bias") {
        Some((_, v)) if spec.center => v.clone(),
        _ => vec![0.0; channels],
    };
    let mut stats = [gamma, beta, mean, var];
    let x = match x.form {
        Form::Kiln if x.shape.as_image().is_some() => ex.as_nchw(x),
        _ => x.clone(),
    };
    let pre = pre_activation(name, spec.activation);
    let y = match x.form {
        Form::Kiln if x.shape.rank() > 1 => {
            // Channels last on a sequence: y = x * s + (beta - mean * s), s = gamma /
            // sqrt(var + eps), computed in f64.
            let [gamma, beta, mean, var] = &stats;
            let eps = f64::from(spec.epsilon);
            let s: Vec<f64> = gamma
                .iter()
                .zip(var)
                .map(|(&g, &v)| f64::from(g) / (f64::from(v) + eps).sqrt())
                .collect();
            let shift: Vec<f32> = (0..channels)
                .map(|i| (f64::from(beta[i]) - f64::from(mean[i]) * s[i]) as f32)
                .collect();
            let s: Vec<f32> = s.iter().map(|&v| v as f32).collect();
            let s =
                ex.b.constant(&format!("{name}.folded_scale"), &[channels], &s);
            let shift =
                ex.b.constant(&format!("{name}.folded_shift"), &[channels], &shift);
            let scaled = ex.b.node(
                "Mul",
                &format!("{name}/scale"),
                &[&x.name, &s],
                &format!("{name}/scaled"),
                vec![],
            );
            ex.b.node("Add", name, &[&scaled, &shift], &pre, vec![])
        }
        _ => {
            if let Form::ChwVector(h, w, c) = x.form {
                for stat in &mut stats {
                    let kiln = std::mem::take(stat);
                    *stat = (0..c * h * w)
                        .map(|onnx| {
                            let (ch, rest) = (onnx / (h * w), onnx % (h * w));
                            kiln[rest * c + ch]
                        })
                        .collect();
                }
            }
            let names = ["weight", "bias", "running_mean", "running_var"];
            let inputs: Vec<String> = names
                .iter()
                .zip(&stats)
                .map(|(n, values)| ex.b.constant(&format!("{name}.{n}"), &[channels], values))
                .collect();
            let inputs = [
                x.name.as_str(),
                &inputs[0],
                &inputs[1],
                &inputs[2],
                &inputs[3],
            ];
            let attributes = vec![("epsilon", Attr::Float(spec.epsilon))];
            ex.b.node("BatchNormalization", name, &inputs, &pre, attributes)
        }
    };
    let y = Val { name: y, ..x };
    Ok(ex.activation(
        &y,
        spec.activation,
        &format!("{name}/{}", spec.activation.name()),
        name,
    ))
}

/// A vector of the input: an NCHW image's stays in `c, h, w` order for the layer
/// after to absorb (unless the order is kiln's anyway: one channel, or one pixel).
fn flatten(ex: &mut Exporter, name: &str, x: &Val, shape: Shape) -> Val {
    let attributes = || vec![("axis", Attr::Int(1))];
    match x.form {
        Form::Nchw => {
            let (h, w, c) = x.shape.as_image().unwrap_or((1, 1, 1));
            let y = ex.b.node("Flatten", name, &[&x.name], name, attributes());
            let form = if c == 1 || h * w == 1 {
                Form::Kiln
            } else {
                Form::ChwVector(h, w, c)
            };
            Val {
                name: y,
                form,
                shape,
            }
        }
        Form::Kiln if x.shape.rank() > 1 => {
            let y = ex.b.node("Flatten", name, &[&x.name], name, attributes());
            Val {
                name: y,
                form: Form::Kiln,
                shape,
            }
        }
        _ => {
            let y = ex.b.node("Identity", name, &[&x.name], name, vec![]);
            Val {
                name: y,
                form: x.form,
                shape,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_shape::{ArgType, ArgValue, Args, KINDS};

    /// A layer kind added to kiln without an ONNX form fails here, not in a user's
    /// export.
    #[test]
    fn every_kind_has_a_lowering() {
        for kind in KINDS {
            let mut args = Args::new();
            for arg in kind.args.iter().filter(|a| a.is_required()) {
                let value = match arg.ty {
                    ArgType::Count => ArgValue::Count(2),
                    ArgType::Size => ArgValue::Size((1, 1)),
                    ArgType::Number => ArgValue::Number(0.5),
                    _ => continue,
                };
                args.set(arg.name, value);
            }
            let spec = (kind.spec)(&args);
            // An image, or a vector for the kinds (Dense) that take only those, or a
            // sequence of values or of token ids.
            let inputs = [
                Shape::new(&[2, 2, 2]),
                Shape::new(&[2]),
                Shape::new(&[2, 2]),
                Shape::tokens(&[2], 2),
            ];
            let (input, shape) = inputs
                .into_iter()
                .find_map(|input| Some((input, spec.output_for(&input).ok()?)))
                .unwrap_or_else(|| panic!("{} takes no test input", kind.name));
            let tensors = crate::export::Tensors::from([
                ("l.weight".to_string(), (vec![2, 2], vec![1.0; 4])),
                ("l.bias".to_string(), (vec![2], vec![0.0; 2])),
                ("l.running_mean".to_string(), (vec![2], vec![0.0; 2])),
                ("l.running_var".to_string(), (vec![2], vec![1.0; 2])),
                ("l.qkv_weight".to_string(), (vec![2, 6], vec![1.0; 12])),
                ("l.out_weight".to_string(), (vec![2, 2], vec![1.0; 4])),
            ]);
            // A recurrent layer's tensors are as wide as its cell's gates (a GRU
            // with reset_after has two biases): they have a name of their own.
            let mut tensors = tensors;
            if let Some(r) = (&*spec as &dyn Any).downcast_ref::<kiln_shape::RecurrentSpec>() {
                let w = r.gate_width();
                let bias = match r.cell {
                    kiln_shape::Cell::Gru { reset_after: true } => 2 * w,
                    _ => w,
                };
                for part in ["kernel", "recurrent_kernel"] {
                    tensors.insert(format!("lstm.{part}"), (vec![2, w], vec![1.0; 2 * w]));
                }
                tensors.insert("lstm.bias".to_string(), (vec![bias], vec![0.0; bias]));
            }
            let mut ex = Exporter::new(&tensors);
            let x = Val {
                name: "input".into(),
                form: Form::Kiln,
                shape: input,
            };
            let any: &dyn Any = &*spec;
            let name = if any.is::<kiln_shape::RecurrentSpec>() {
                "lstm"
            } else {
                "l"
            };
            let y = layer(&mut ex, name, &*spec, &x, shape);
            assert!(y.is_ok(), "{}: {:?}", kind.name, y.err());
        }
    }
}
