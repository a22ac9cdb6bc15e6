//! The 1-D kinds as ONNX operators. ONNX's `Conv` and `MaxPool` take sequences as
//! NCL, kiln keeps them NLC (Keras's order): each such layer turns its input to NCL
//! and its output back with a `Transpose` (onnxruntime folds a pair that meet). The
//! global poolings reduce over axis 1 of NLC and need none.

use kiln_shape::{
    Conv1dSpec, GlobalPool1dSpec, MaxPool1dSpec, Padding, PoolMode, Shape, conv_output_len,
    same_padding_before,
};

use super::pre_activation;
use crate::builder::{Attr, ints};
use crate::export::{Exporter, Form, Val};
use crate::{Error, Result};

/// `[batch, a, b]` to `[batch, b, a]`: NLC to NCL and back.
fn swap_last_two(ex: &mut Exporter, x: &str, node: &str) -> String {
    ex.b.node(
        "Transpose",
        node,
        &[x],
        node,
        vec![("perm", Attr::Ints(vec![0, 2, 1]))],
    )
}

/// ONNX's `pads` (`[before, after]`) for a window spanning `span` steps with
/// `stride` over `time` steps.
fn pads(time: usize, span: usize, stride: usize, padding: Padding) -> Vec<i64> {
    let before = same_padding_before(time, span, stride, padding);
    let out = conv_output_len(time, span, stride, padding).unwrap_or(0);
    let after = (out.saturating_sub(1) * stride + span).saturating_sub(time + before);
    ints(&[before, after])
}

/// The time steps of the sequence `x` in kiln's order, or the error naming `layer`.
fn time_of(x: &Val, layer: &str) -> Result<usize> {
    match (x.form, x.shape.dims()) {
        (Form::Kiln, &[time, _]) => Ok(time),
        _ => Err(Error::Graph {
            node: layer.to_string(),
        }),
    }
}

/// `Conv(x, weight, bias)` on NCL with the dilation as `dilations`, the kernel turned
/// from kiln's `[kernel, in, filters]` to ONNX's `[filters, in, kernel]`.
pub(super) fn conv1d(
    ex: &mut Exporter,
    name: &str,
    spec: &Conv1dSpec,
    x: &Val,
    shape: Shape,
) -> Result<Val> {
    let time = time_of(x, name)?;
    let (_, weight) = ex.tensor(name, "weight")?.clone();
    let (_, bias) = ex.tensor(name, "bias")?.clone();
    let (k, out) = (spec.kernel, spec.filters);
    let inp = weight.len() / (k * out).max(1);
    let mut oik = vec![0.0; weight.len()];
    for t in 0..k {
        for c in 0..inp {
            for o in 0..out {
                oik[(o * inp + c) * k + t] = weight[(t * inp + c) * out + o];
            }
        }
    }
    let wt =
        ex.b.constant(&format!("{name}.weight"), &[out, inp, k], &oik);
    let b = ex.b.constant(&format!("{name}.bias"), &[out], &bias);
    let ncl = swap_last_two(ex, &x.name, &format!("{name}/ncl"));
    let attributes = vec![
        ("kernel_shape", Attr::Ints(ints(&[k]))),
        ("strides", Attr::Ints(ints(&[spec.stride]))),
        ("dilations", Attr::Ints(ints(&[spec.dilation]))),
        (
            "pads",
            Attr::Ints(pads(time, spec.span(), spec.stride, spec.padding)),
        ),
    ];
    let y = ex.b.node(
        "Conv",
        name,
        &[&ncl, &wt, &b],
        &format!("{name}/conv"),
        attributes,
    );
    let pre = pre_activation(name, spec.activation);
    let y = ex.b.node(
        "Transpose",
        &format!("{name}/nlc"),
        &[&y],
        &pre,
        vec![("perm", Attr::Ints(vec![0, 2, 1]))],
    );
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

/// `MaxPool` on NCL (padding with the lowest value, as kiln's max ignores padding).
pub(super) fn max_pool1d(
    ex: &mut Exporter,
    name: &str,
    spec: &MaxPool1dSpec,
    x: &Val,
    shape: Shape,
) -> Result<Val> {
    let time = time_of(x, name)?;
    let ncl = swap_last_two(ex, &x.name, &format!("{name}/ncl"));
    let attributes = vec![
        ("kernel_shape", Attr::Ints(ints(&[spec.size]))),
        ("strides", Attr::Ints(ints(&[spec.stride]))),
        (
            "pads",
            Attr::Ints(pads(time, spec.size, spec.stride, spec.padding)),
        ),
    ];
    let y = ex.b.node(
        "MaxPool",
        name,
        &[&ncl],
        &format!("{name}/pool"),
        attributes,
    );
    let y = ex.b.node(
        "Transpose",
        &format!("{name}/nlc"),
        &[&y],
        name,
        vec![("perm", Attr::Ints(vec![0, 2, 1]))],
    );
    Ok(Val {
        name: y,
        form: Form::Kiln,
        shape,
    })
}

/// `ReduceMean` or `ReduceMax` over the time axis (1) of NLC.
pub(super) fn global_pool1d(
    ex: &mut Exporter,
    name: &str,
    spec: &GlobalPool1dSpec,
    x: &Val,
    shape: Shape,
) -> Result<Val> {
    time_of(x, name)?;
    let op = match spec.mode {
        PoolMode::Avg => "ReduceMean",
        PoolMode::Max => "ReduceMax",
    };
    let attributes = vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(0))];
    let y = ex.b.node(op, name, &[&x.name], name, attributes);
    Ok(Val {
        name: y,
        form: Form::Kiln,
        shape,
    })
}
