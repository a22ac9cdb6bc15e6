#!/usr/bin/env python3
"""PyTorch (CPU) oracle for a kiln model with residual and concatenated blocks.

Builds, with torch.nn, the network that `crates/kiln/tests/pytorch_blocks.rs`
declares with `kiln::model!`:

    input [8, 8, 3]
    stem:  Conv2d(4, 3, padding = same, activation = relu)
    res1:  Residual(activation = relu) { a: Conv2d(4, 3, same, relu), b: Conv2d(4, 3, same) }
    res2:  Residual(activation = relu) {
               a: Conv2d(6, 3, stride = 2, same, relu), b: Conv2d(6, 3, same),
               shortcut: Conv2d(6, 1, stride = 2) }
    mix:   Concat { one: Conv2d(2, 1), three: Conv2d(2, 3, same, relu), skip: Identity }
    gap:   GlobalAvgPool2d
    out:   Dense(5)

with the same weights, runs a batch of 2 forward, and back-propagates
L = sum(y * u). It writes `pytorch_blocks.rs` (next to this file): the output,
the gradient with respect to the input, and every parameter's gradient, in
kiln's layouts (NHWC activations, conv kernels (kh, kw, in, out), dense
kernels (in, units)). `mix`'s input feeds three consumers, and each residual
block's input two, so their gradients are sums.

    python3 -m venv /tmp/oracle-venv
    /tmp/oracle-venv/bin/pip install torch numpy
    /tmp/oracle-venv/bin/python crates/kiln/tests/oracle/pytorch_blocks.py

Deterministic data (no RNG), element i = flat row-major index in kiln's layout,
computed in float64 then cast to float32:
  * input x (salt 1.0) and output weights u (salt 0.5): sin(0.37 * i + salt) * 0.9
  * the t-th parameter tensor in kiln's order (stem.weight, stem.bias,
    res1.a.weight, ...; salt 2.0 + t): cos(0.23 * i + salt) * 0.5

TensorFlow's `same` padding: out = ceil(in / stride), the odd pad cell after
(bottom / right), done as an explicit F.pad before a `valid` convolution.
"""

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

BATCH = 2


def gen(shape, salt, scale, fn):
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.float64)
    return (fn(0.37 * i + salt) * scale).astype(np.float32).reshape(shape)


def gen_param(shape, salt):
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.float64)
    return (np.cos(0.23 * i + salt) * 0.5).astype(np.float32).reshape(shape)


class Conv(nn.Module):
    """A kiln Conv2d: TensorFlow `same` padding or `valid`, an optional ReLU."""

    def __init__(self, cin, cout, k, stride=1, same=False, relu=False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride)
        self.k, self.stride, self.same, self.relu = k, stride, same, relu

    def forward(self, x):
        if self.same:
            pads = []
            for size in (x.shape[3], x.shape[2]):  # width, then height, as F.pad wants
                out = math.ceil(size / self.stride)
                total = max((out - 1) * self.stride + self.k - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        y = self.conv(x)
        return torch.relu(y) if self.relu else y


class Blocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = Conv(3, 4, 3, same=True, relu=True)
        self.res1_a = Conv(4, 4, 3, same=True, relu=True)
        self.res1_b = Conv(4, 4, 3, same=True)
        self.res2_a = Conv(4, 6, 3, stride=2, same=True, relu=True)
        self.res2_b = Conv(6, 6, 3, same=True)
        self.res2_shortcut = Conv(4, 6, 1, stride=2)
        self.mix_one = Conv(6, 2, 1)
        self.mix_three = Conv(6, 2, 3, same=True, relu=True)
        self.out = nn.Linear(10, 5)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.res1_b(self.res1_a(x)))
        x = torch.relu(self.res2_shortcut(x) + self.res2_b(self.res2_a(x)))
        x = torch.cat([self.mix_one(x), self.mix_three(x), x], dim=1)
        x = x.mean(dim=(2, 3))
        return self.out(x)


# kiln's parameter order and names, with the torch module each belongs to.
CONVS = ["stem", "res1.a", "res1.b", "res2.a", "res2.b", "res2.shortcut",
         "mix.one", "mix.three"]


def kiln_tensors(model):
    """(kiln name, torch parameter, to kiln layout, from kiln layout) in kiln's order."""
    out = []
    for name in CONVS:
        conv = getattr(model, name.replace(".", "_")).conv
        out.append((f"{name}.weight", conv.weight,
                    lambda w: w.permute(2, 3, 1, 0), lambda w: w.permute(3, 2, 0, 1)))
        out.append((f"{name}.bias", conv.bias, lambda b: b, lambda b: b))
    out.append(("out.weight", model.out.weight, lambda w: w.t(), lambda w: w.t()))
    out.append(("out.bias", model.out.bias, lambda b: b, lambda b: b))
    return out


def fmt(values):
    return "".join(f"    {v:.9g},\n" for v in values)


def main():
    model = Blocks()
    tensors = kiln_tensors(model)
    with torch.no_grad():
        for t, (_, param, to_kiln, from_kiln) in enumerate(tensors):
            shape = tuple(to_kiln(param).shape)
            param.copy_(from_kiln(torch.from_numpy(gen_param(shape, 2.0 + t))))
    x_nhwc = torch.from_numpy(gen((BATCH, 8, 8, 3), 1.0, 0.9, np.sin))
    x = x_nhwc.permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    u = torch.from_numpy(gen((BATCH, 5), 0.5, 0.9, np.sin))
    y = model(x)
    (y * u).sum().backward()

    lines = [
        f"// Generated by pytorch_blocks.py with torch {torch.__version__}; do not edit.",
        "//",
        "// The output, the input's gradient (NHWC) and each parameter's gradient (kiln",
        "// layouts) of the model for a batch of 2, L = sum(y * u).",
        "",
        "/// Output [2, 5].",
        "pub const OUTPUT: &[f32] = &[\n" + fmt(y.detach().numpy().ravel()) + "];",
        "/// dL/dx, [2, 8, 8, 3].",
        "pub const INPUT_GRAD: &[f32] = &[\n"
        + fmt(x.grad.permute(0, 2, 3, 1).numpy().ravel()) + "];",
        "/// Every parameter's gradient, in kiln's order and layout.",
        "pub const PARAM_GRADS: &[(&str, &[f32])] = &[",
    ]
    for name, param, to_kiln, _ in tensors:
        grad = to_kiln(param.grad).contiguous().numpy().ravel()
        lines.append(f'    (\n        "{name}",\n        &[\n'
                     + "".join(f"            {v:.9g},\n" for v in grad) + "        ],\n    ),")
    lines.append("];")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytorch_blocks.rs")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
