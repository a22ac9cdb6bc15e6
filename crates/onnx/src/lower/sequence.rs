//! The sequence kinds as ONNX operators: `Embedding` as `Gather`, `Lstm`, `Gru` and
//! `SimpleRnn` as ONNX's `LSTM`, `GRU` (`linear_before_reset = 1` for kiln's
//! `reset_after`) and `RNN`, `TimeDense` as `MatMul` + `Add`.

use kiln_shape::{Cell, RecurrentSpec, Shape, TimeDenseSpec};

use super::pre_activation;
use crate::builder::Attr;
use crate::export::{Exporter, Form, Val};
use crate::{Error, Result};

/// ONNX's `TensorProto.DataType` of `int64`, for `Cast`.
const INT64: i64 = 7;

/// ONNX's gate order as kiln's (Keras's) gate blocks: an LSTM's `i, o, f, c` are
/// kiln's `i, f, g, o` reordered; a GRU's `z, r, h` and an RNN's one block are kiln's.
fn onnx_gates(cell: Cell) -> &'static [usize] {
    match cell {
        Cell::Lstm => &[0, 3, 1, 2],
        Cell::Gru { .. } => &[0, 1, 2],
        Cell::SimpleRnn => &[0],
    }
}

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
fn onnx_kernel(cell: Cell, kernel: &[f32], rows: usize, units: usize) -> Vec<f32> {
    let w = cell.gates() * units;
    let mut out = vec![0.0; kernel.len()];
    for (onnx_gate, &kiln_gate) in onnx_gates(cell).iter().enumerate() {
        for j in 0..units {
            for r in 0..rows {
                out[(onnx_gate * units + j) * rows + r] = kernel[r * w + kiln_gate * units + j];
            }
        }
    }
    out
}

/// ONNX's `LSTM`, `GRU` or `RNN` (zero initial states), time-major inside: the
/// input transposed to `[time, batch, features]`, and the output back to kiln's order
/// (every step) or the last hidden state.
pub(super) fn recurrent(
    ex: &mut Exporter,
    name: &str,
    spec: &RecurrentSpec,
    x: &Val,
    shape: Shape,
) -> Result<Val> {
    let (cell, units) = (spec.cell, spec.units);
    if spec.bidirectional {
        return Err(Error::Graph {
            node: format!(
                "{name}: a bidirectional {} has no ONNX form in kiln yet",
                cell.name()
            ),
        });
    }
    let width = cell.gates() * units;
    let (_, kernel) = ex.tensor(name, "kernel")?.clone();
    let (_, recurrent) = ex.tensor(name, "recurrent_kernel")?.clone();
    let (_, bias) = ex.tensor(name, "bias")?.clone();
    let features = kernel.len() / width.max(1);
    // ONNX adds an input and a recurrent bias: a GRU with reset_after has both, the
    // other cells one (the recurrent one is then zero).
    let recurrent_bias = cell == (Cell::Gru { reset_after: true });
    let bias_len = if recurrent_bias { 2 * width } else { width };
    if recurrent.len() != width * units
        || bias.len() != bias_len
        || kernel.len() != features * width
    {
        return Err(Error::Graph {
            node: format!("{name}: {} tensors do not fit {units} units", cell.name()),
        });
    }
    let w = ex.b.constant(
        &format!("{name}.kernel"),
        &[1, width, features],
        &onnx_kernel(cell, &kernel, features, units),
    );
    let r = ex.b.constant(
        &format!("{name}.recurrent_kernel"),
        &[1, width, units],
        &onnx_kernel(cell, &recurrent, units, units),
    );
    let mut b = vec![0.0; 2 * width];
    for (half, offset) in [(0, 0), (1, width)]
        .into_iter()
        .take(if recurrent_bias { 2 } else { 1 })
    {
        for (onnx_gate, &kiln_gate) in onnx_gates(cell).iter().enumerate() {
            let (to, from) = (half * width + onnx_gate * units, offset + kiln_gate * units);
            b[to..to + units].copy_from_slice(&bias[from..from + units]);
        }
    }
    let b = ex.b.constant(&format!("{name}.bias"), &[1, 2 * width], &b);
    let (op, mut attrs) = match cell {
        Cell::Lstm => ("LSTM", vec![]),
        Cell::Gru { reset_after } => (
            "GRU",
            vec![("linear_before_reset", Attr::Int(i64::from(reset_after)))],
        ),
        Cell::SimpleRnn => ("RNN", vec![]),
    };
    attrs.push(("hidden_size", Attr::Int(units as i64)));
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
        op,
        &format!("{name}/{}", op.to_lowercase()),
        &[&time_major, &w, &r, &b],
        &format!("{name}/y"),
        attrs,
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
