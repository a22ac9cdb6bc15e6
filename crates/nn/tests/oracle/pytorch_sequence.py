#!/usr/bin/env python3
"""PyTorch (CPU) oracle for kiln's sequence layers: Conv1d, MaxPool1d and the
global poolings over time, forward values and both gradients.

Writes `pytorch_sequence.rs` next to this file: for each case its geometry, the
output `y`, and, for an upstream gradient `dy`, the input gradient `dx` and (for
Conv1d) the kernel and bias gradients, all float32 in kiln's layouts.

How to run (any Python >= 3.9 with torch and numpy; CPU is enough):

    python3 crates/nn/tests/oracle/pytorch_sequence.py

Layouts. kiln (like Keras) keeps sequences NLC, `[batch, time, features]`;
PyTorch's nn.Conv1d and nn.MaxPool1d take NCL, so `x_torch = x.permute(0, 2, 1)`
and outputs come back with `.permute(0, 2, 1)`. kiln's Conv1d kernel is Keras's
`[kernel, in, filters]`; nn.Conv1d's weight is `[filters, in, kernel]`, so
`w_torch = w_kiln.permute(2, 1, 0)` and the weight gradient goes back with the same
permutation. Padding is applied as an explicit F.pad before a `valid` op:
  * same:   TensorFlow's, out = ceil(time / stride), total = max((out - 1) * stride
            + span - time, 0) with span = dilation * (kernel - 1) + 1, half before
            (rounded down), the rest after; max pooling pads with -inf;
  * causal: span - 1 zeros before the sequence, none after (Keras's Conv1D).
The global poolings are `x.mean(1)` and `x.amax(1)` on the NLC tensor.

Deterministic data (no RNG), element i = flat row-major index in kiln's layout,
computed in float64 then cast to float32:
  * inputs x:           sin(0.37 * i + 1.0) * 0.9
  * kernel, bias:       cos(0.23 * i + salt) * 0.5, salt 2.0 (kernel), 3.0 (bias)
  * upstream gradient:  sin(0.41 * i + 4.0) * 0.7
"""

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)


def data(shape, scale, freq, salt, fn):
    i = np.arange(int(np.prod(shape)), dtype=np.float64)
    return (fn(freq * i + salt) * scale).astype(np.float32).reshape(shape)


def x_of(shape):
    return torch.tensor(data(shape, 0.9, 0.37, 1.0, np.sin), requires_grad=True)


def dy_of(shape):
    return torch.tensor(data(shape, 0.7, 0.41, 4.0, np.sin))


def same_pads(time, span, stride):
    out = -(-time // stride)
    total = max((out - 1) * stride + span - time, 0)
    return total // 2, total - total // 2


def pads(time, span, stride, padding):
    if padding == "valid":
        return 0, 0
    if padding == "same":
        return same_pads(time, span, stride)
    return span - 1, 0


def conv1d(name, x_shape, filters, kernel, stride, dilation, padding, activation):
    n, time, c = x_shape
    x = x_of(x_shape)
    w_kiln = torch.tensor(data((kernel, c, filters), 0.5, 0.23, 2.0, np.cos), requires_grad=True)
    b = torch.tensor(data((filters,), 0.5, 0.23, 3.0, np.cos), requires_grad=True)
    conv = torch.nn.Conv1d(c, filters, kernel, stride=stride, dilation=dilation, padding=0)
    with torch.no_grad():
        conv.weight.copy_(w_kiln.permute(2, 1, 0))
        conv.bias.copy_(b)
    span = dilation * (kernel - 1) + 1
    xt = F.pad(x.permute(0, 2, 1), pads(time, span, stride, padding))
    y = conv(xt)
    if activation == "tanh":
        y = torch.tanh(y)
    y = y.permute(0, 2, 1)
    dy = dy_of(tuple(y.shape))
    y.backward(dy)
    dw = conv.weight.grad.permute(2, 1, 0)
    return name, {
        "X_SHAPE": list(x_shape),
        "Y_SHAPE": list(y.shape),
        "Y": y.detach(),
        "DX": x.grad,
        "DW": dw,
        "DB": conv.bias.grad,
    }


def max_pool1d(name, x_shape, size, stride, padding):
    n, time, c = x_shape
    x = x_of(x_shape)
    before, after = pads(time, size, stride, padding)
    xt = F.pad(x.permute(0, 2, 1), (before, after), value=float("-inf"))
    y = torch.nn.MaxPool1d(size, stride)(xt).permute(0, 2, 1)
    dy = dy_of(tuple(y.shape))
    y.backward(dy)
    return name, {"X_SHAPE": list(x_shape), "Y_SHAPE": list(y.shape), "Y": y.detach(), "DX": x.grad}


def global_pool(name, x_shape, mode):
    x = x_of(x_shape)
    y = x.mean(1) if mode == "avg" else x.amax(1)
    dy = dy_of(tuple(y.shape))
    y.backward(dy)
    return name, {"X_SHAPE": list(x_shape), "Y_SHAPE": list(y.shape), "Y": y.detach(), "DX": x.grad}


CASES = [
    conv1d("CONV1D_VALID", (2, 9, 3), 4, 3, 1, 1, "valid", "linear"),
    conv1d("CONV1D_SAME_STRIDE2", (2, 10, 3), 5, 4, 2, 1, "same", "linear"),
    conv1d("CONV1D_CAUSAL_DILATION2_TANH", (2, 11, 2), 3, 3, 1, 2, "causal", "tanh"),
    conv1d("CONV1D_VALID_DILATION3_STRIDE2", (3, 16, 4), 2, 3, 2, 3, "valid", "linear"),
    conv1d("CONV1D_SAME_DILATION2", (2, 12, 3), 4, 3, 1, 2, "same", "linear"),
    max_pool1d("MAXPOOL1D_VALID_3_2", (2, 9, 3), 3, 2, "valid"),
    max_pool1d("MAXPOOL1D_SAME_3_2", (2, 8, 2), 3, 2, "same"),
    max_pool1d("MAXPOOL1D_2", (2, 8, 3), 2, 2, "valid"),
    global_pool("GLOBAL_AVG_POOL1D", (2, 7, 4), "avg"),
    global_pool("GLOBAL_MAX_POOL1D", (2, 7, 4), "max"),
]


def rust_value(v):
    if isinstance(v, list):
        return "&[" + ", ".join(str(d) for d in v) + "]", "&[usize]"
    flat = v.detach().contiguous().numpy().astype(np.float32).ravel()
    body = "".join(f"\n    {float(f):.9e}," for f in flat)
    return "&[" + body + "\n]", "&[f32]"


def main():
    import os

    out = [
        f"// Generated by pytorch_sequence.py with torch {torch.__version__}; do not edit.",
        "// Float32 values in kiln's layouts (NLC sequences, Conv1d kernels [kernel, in,",
        "// filters]); inputs, parameters and upstream gradients are regenerated from the",
        "// formulas in the script's docstring.",
        "",
    ]
    for name, fields in CASES:
        for key, value in fields.items():
            text, ty = rust_value(value)
            out.append(f"pub const {name}_{key}: {ty} = {text};")
        out.append("")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytorch_sequence.rs")
    with open(path, "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
