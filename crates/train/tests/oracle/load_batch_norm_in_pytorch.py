"""Opens a kiln checkpoint of a network with batch normalisation in PyTorch, its
running statistics as `BatchNorm2d` buffers, and checks its inference output
(tests/checkpoint.rs).

    python load_batch_norm_in_pytorch.py CHECKPOINT EXPECTED_JSON

The network is `NormCnn` of tests/checkpoint.rs: Conv2d(2 -> 4, 3x3, valid),
BatchNorm (PyTorch's convention: epsilon 1e-5), ReLU, MaxPool(2), Linear(36 -> 3).
EXPECTED_JSON holds kiln's input batch (NHWC, flat) and its inference output. The
script loads the tensors with `safetensors.torch.load_file`, maps kiln's names and
layouts to the PyTorch model's `state_dict` (weights and the `running_mean` and
`running_var` buffers; `num_batches_tracked` is PyTorch's own counter), loads it
strictly, and compares the outputs. It exits 0 when they agree within 1e-5.
"""

import json
import sys

import torch
from safetensors.torch import load_file

from pytorch_safetensors import C_IN, FILTERS, H, KERNEL, POOLED, UNITS, W


class NormCnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(C_IN, FILTERS, KERNEL)
        self.bn1 = torch.nn.BatchNorm2d(FILTERS, eps=1e-5)
        self.pool1 = torch.nn.MaxPool2d(2)
        self.out = torch.nn.Linear(FILTERS * POOLED * POOLED, UNITS)

    def forward(self, x):  # x: NCHW
        x = self.pool1(torch.relu(self.bn1(self.conv1(x))))
        # kiln flattens NHWC: height, width, then channels.
        return self.out(x.permute(0, 2, 3, 1).flatten(1))


def main():
    path, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path) as f:
        expected = json.load(f)
    tensors = load_file(path)
    dense = tensors["out.weight"]  # [h * w * c, units], rows in NHWC order
    state = {
        "conv1.weight": tensors["conv1.weight"].permute(3, 2, 0, 1),
        "conv1.bias": tensors["conv1.bias"],
        "bn1.weight": tensors["bn1.weight"],
        "bn1.bias": tensors["bn1.bias"],
        "bn1.running_mean": tensors["bn1.running_mean"],
        "bn1.running_var": tensors["bn1.running_var"],
        "bn1.num_batches_tracked": torch.tensor(0),
        "out.weight": dense.t(),
        "out.bias": tensors["out.bias"],
    }
    model = NormCnn().eval()
    model.load_state_dict(state, strict=True)
    x = torch.tensor(expected["input"]).reshape(-1, H, W, C_IN).permute(0, 3, 1, 2)
    with torch.no_grad():
        y = model(x).flatten()
    kiln = torch.tensor(expected["output"])
    err = (y - kiln).abs().max().item()
    if not err <= 1e-5:
        print(f"PyTorch's output differs from kiln's by {err}: {y} vs {kiln}")
        sys.exit(1)
    print("ok: kiln's running statistics load in PyTorch as buffers and give kiln's output")


if __name__ == "__main__":
    main()
