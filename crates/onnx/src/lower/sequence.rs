//! The sequence kinds as ONNX operators: `Embedding` as `Gather`, `Lstm` as ONNX's
//! `LSTM`, `TimeDense` as `MatMul` + `Add`.

use kiln_shape::{RecurrentSpec, Shape, TimeDenseSpec};

use super::pre_activation;
use crate::builder::Attr;
use crate::export::{Exporter, Form, Val};
use crate::{Error, Result};

/// ONNX's `TensorProto.DataType` of `int64`, for `Cast`.
const INT64: i64 = 7;

/// ONNX's gate order, `i, o, f, c`, as kiln's (Keras's) gate blocks `i, f, g, o`.
const LSTM_GATES: [usize; 4] = [0, 3, 1, 2];

/// The token ids (exact floats) cast to `int64`, then their rows of the table.
pub(super) fn embedding(ex: &mut Exporter, name: &str, x: &Val, shape: Shape) -> Result<Val> {
    let (dims, table) = ex.tensor(name, "weight")?.clone();
    let table = ex.b.constant(&format!("{name}.weight"), &dims, &table);
    let ids = ex.b.node(
        "Cast",
        &format!("{name}/ids"),
        &[&x.name],
        &format!("{name}/ids"),
        vec![("to", Attr::Int(INT64))],
    );
    let y = ex.b.node(
        "Gather",
        name,
        &[&table, &ids],
        name,
        vec![("axis", Attr::Int(0))],
    );
    Ok(Val {
        name: y,
        form: Form::Kiln,
        shape,
    })
}

/// `activation(x W + b)` over the last axis of `[batch, time, features]`.
pub(super) fn time_dense(
    ex: &mut Exporter,
    name: &str,
    spec: &TimeDenseSpec,
    x: &Val,
    shape: Shape,
) -> Result<Val> {
    let (dims, weight) = ex.tensor(name, "weight")?.clone();
    let (_, bias) = ex.tensor(name, "bias")?.clone();
    let w = ex.b.constant(&format!("{name}.weight"), &dims, &weight);
    let b = ex.b.constant(&format!("{name}.bias"), &[spec.units], &bias);
    let product = ex.b.node(
        "MatMul",
        &format!("{name}/matmul"),
        &[&x.name, &w],
        &format!("{name}/matmul"),
        vec![],
    );
    let pre = pre_activation(name, spec.activation);
    let y = ex.b.node("Add", name, &[&product, &b], &pre, vec![]);
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

/// kiln's `[rows, gates * units]` kernel as ONNX's `[1, gates * units, rows]`, gate
/// blocks in ONNX's order.
fn onnx_kernel(kernel: &[f32], rows: usize, units: usize) -> Vec<f32> {
    let w = 4 * units;
    let mut out = vec![0.0; kernel.len()];
    for (onnx_gate, &kiln_gate) in LSTM_GATES.iter().enumerate() {
        for j in 0..units {
            for r in 0..rows {
                out[(onnx_gate * units + j) * rows + r] = kernel[r * w + kiln_gate * units + j];
            }
        }
    }
    out
}

/// ONNX's `LSTM` (zero initial states), time-major inside: the input transposed to
/// `[time, batch, features]`, and the output back to kiln's order (every step) or
/// the last hidden state.
pub(super) fn lstm(
    ex: &mut Exporter,
    name: &str,
    spec: &RecurrentSpec,
    x: &Val,
    shape: Shape,
) -> Result<Val> {
    let units = spec.units;
    let (_, kernel) = ex.tensor(name, "kernel")?.clone();
    let (_, recurrent) = ex.tensor(name, "recurrent_kernel")?.clone();
    let (_, bias) = ex.tensor(name, "bias")?.clone();
    let features = kernel.len() / (4 * units).max(1);
    if recurrent.len() != 4 * units * units
        || bias.len() != 4 * units
        || kernel.len() != features * 4 * units
    {
        return Err(Error::Graph {
            node: format!("{name}: LSTM tensors do not fit {units} units"),
        });
    }
    let w = ex.b.constant(
        &format!("{name}.kernel"),
        &[1, 4 * units, features],
        &onnx_kernel(&kernel, features, units),
    );
    let r = ex.b.constant(
        &format!("{name}.recurrent_kernel"),
        &[1, 4 * units, units],
        &onnx_kernel(&recurrent, units, units),
    );
    // ONNX adds an input and a recurrent bias: kiln's one, then zeros.
    let mut b = vec![0.0; 8 * units];
    for (onnx_gate, &kiln_gate) in LSTM_GATES.iter().enumerate() {
        b[onnx_gate * units..(onnx_gate + 1) * units]
            .copy_from_slice(&bias[kiln_gate * units..(kiln_gate + 1) * units]);
    }
    let b = ex.b.constant(&format!("{name}.bias"), &[1, 8 * units], &b);
    let perm = || vec![("perm", Attr::Ints(vec![1, 0, 2]))];
    let time_major = ex.b.node(
        "Transpose",
        &format!("{name}/time_major"),
        &[&x.name],
        &format!("{name}/time_major"),
        perm(),
    );
    // Y, every step's hidden state: [time, directions, batch, units].
    let y_all = ex.b.node(
        "LSTM",
        &format!("{name}/lstm"),
        &[&time_major, &w, &r, &b],
        &format!("{name}/y"),
        vec![("hidden_size", Attr::Int(units as i64))],
    );
    let y = if spec.return_sequences {
        let axes = ex.b.int_constant(&format!("{name}/direction_axis"), &[1]);
        let squeezed = ex.b.node(
            "Squeeze",
            &format!("{name}/squeeze"),
            &[&y_all, &axes],
            &format!("{name}/squeeze"),
            vec![],
        );
        ex.b.node("Transpose", name, &[&squeezed], name, perm())
    } else {
        let last = ex.b.int_constant(&format!("{name}/last_step"), &[-1]);
        let step = ex.b.node(
            "Gather",
            &format!("{name}/last"),
            &[&y_all, &last],
            &format!("{name}/last"),
            vec![("axis", Attr::Int(0))],
        );
        let axes = ex.b.int_constant(&format!("{name}/step_axes"), &[0, 1]);
        ex.b.node("Squeeze", name, &[&step, &axes], name, vec![])
    };
    Ok(Val {
        name: y,
        form: Form::Kiln,
        shape,
    })
}
