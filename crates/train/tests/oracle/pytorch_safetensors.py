"""Writes the PyTorch side of kiln's checkpoint interop test (tests/checkpoint.rs).

A small CNN built in PyTorch, its weights exported in kiln's names and layouts with
`safetensors.torch.save_file`, and PyTorch's output on a fixed batch:

    pytorch_cnn.safetensors   conv1.weight, conv1.bias, out.weight, out.bias
    pytorch_cnn_io.json       {"input": NHWC batch, flat; "output": PyTorch's logits, flat}

The kiln model it matches:

    input: [8, 8, 2], conv1: Conv2d(4, 3, relu), pool1: MaxPool2d(2), flat: Flatten,
    out: Dense(3)

Layouts. kiln keeps Keras's: a convolution kernel is [kh, kw, c_in, c_out] (PyTorch's
[c_out, c_in, kh, kw] permuted by (2, 3, 1, 0)); a dense kernel is [in, units] (the
transpose of PyTorch's Linear.weight). kiln's Flatten runs over an NHWC sample, so
the rows of the dense kernel follow (h, w, c) where PyTorch's flatten of an NCHW
sample follows (c, h, w): the rows are reordered accordingly.

Run from the repository root (written with torch 2.15, safetensors 0.8.0, numpy 2.4):

    python crates/train/tests/oracle/pytorch_safetensors.py
"""

import json
import pathlib

import torch
from safetensors.torch import save_file

HERE = pathlib.Path(__file__).resolve().parent
H = W = 8
C_IN, FILTERS, KERNEL, UNITS = 2, 4, 3, 3
POOLED = (H - KERNEL + 1) // 2  # 3
BATCH = 5


class TorchCnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(C_IN, FILTERS, KERNEL)
        self.pool1 = torch.nn.MaxPool2d(2)
        self.out = torch.nn.Linear(FILTERS * POOLED * POOLED, UNITS)

    def forward(self, x):  # x: NCHW
        x = self.pool1(torch.relu(self.conv1(x)))
        return self.out(torch.flatten(x, 1))


def to_kiln(model):
    """The state dict in kiln's names and layouts."""
    dense = model.out.weight.detach()  # [units, c*h*w], columns in (c, h, w) order
    dense = dense.reshape(UNITS, FILTERS, POOLED, POOLED).permute(2, 3, 1, 0)
    return {
        "conv1.weight": model.conv1.weight.detach().permute(2, 3, 1, 0).contiguous(),
        "conv1.bias": model.conv1.bias.detach().contiguous(),
        "out.weight": dense.reshape(POOLED * POOLED * FILTERS, UNITS).contiguous(),
        "out.bias": model.out.bias.detach().contiguous(),
    }


def main():
    torch.manual_seed(20240607)
    model = TorchCnn().eval()
    # Biases away from zero so that a dropped bias shows.
    with torch.no_grad():
        model.conv1.bias.uniform_(-0.3, 0.3)
        model.out.bias.uniform_(-0.3, 0.3)
    x_nhwc = torch.randn(BATCH, H, W, C_IN)
    with torch.no_grad():
        y = model(x_nhwc.permute(0, 3, 1, 2))
    save_file(to_kiln(model), str(HERE / "pytorch_cnn.safetensors"), metadata={"format": "pt"})
    io = {
        "input": [float(v) for v in x_nhwc.flatten()],
        "output": [float(v) for v in y.flatten()],
    }
    (HERE / "pytorch_cnn_io.json").write_text(json.dumps(io) + "\n")


if __name__ == "__main__":
    main()
