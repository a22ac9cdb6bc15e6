"""Opens a checkpoint that kiln wrote in PyTorch and checks it (tests/checkpoint.rs).

    python load_in_pytorch.py CHECKPOINT EXPECTED_JSON

CHECKPOINT is a kiln checkpoint of the model of pytorch_safetensors.py, saved with an
optimizer, an epoch and a history. EXPECTED_JSON holds what kiln knows: its input
batch (NHWC, flat), its output for that batch, and the metadata it saved. The script
loads the file with `safetensors.torch.load_file`, checks the tensor names, shapes and
dtypes and the metadata, rebuilds the PyTorch model from kiln's layouts, and compares
PyTorch's output with kiln's. It exits 0 when everything matches and prints what does
not otherwise. Tested with torch 2.15, safetensors 0.8.0.
"""

import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from pytorch_safetensors import C_IN, FILTERS, H, KERNEL, POOLED, UNITS, W, TorchCnn

SHAPES = {
    "conv1.weight": (KERNEL, KERNEL, C_IN, FILTERS),
    "conv1.bias": (FILTERS,),
    "out.weight": (POOLED * POOLED * FILTERS, UNITS),
    "out.bias": (UNITS,),
}


def from_kiln(tensors):
    """A PyTorch model holding kiln's weights (the inverse of to_kiln)."""
    model = TorchCnn().eval()
    dense = tensors["out.weight"].reshape(POOLED, POOLED, FILTERS, UNITS)
    state = {
        "conv1.weight": tensors["conv1.weight"].permute(3, 2, 0, 1),
        "conv1.bias": tensors["conv1.bias"],
        "out.weight": dense.permute(3, 2, 0, 1).reshape(UNITS, FILTERS * POOLED * POOLED),
        "out.bias": tensors["out.bias"],
    }
    model.load_state_dict(state)
    return model


def check(path, expected):
    problems = []
    tensors = load_file(path)
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()

    optimizer = json.loads(metadata.get("optimizer", "null"))
    state_names = {"optimizer." + k: k for k in (optimizer or {}).get("tensors", [])}
    want = set(SHAPES) | set(state_names)
    if set(tensors) != want:
        problems.append(f"tensors {sorted(tensors)}, expected {sorted(want)}")
    for name, tensor in tensors.items():
        if tensor.dtype != torch.float32:
            problems.append(f"{name} is {tensor.dtype}")
        param = name if name in SHAPES else state_names.get(name, "").rsplit(".", 1)[0]
        if param in SHAPES and tuple(tensor.shape) != SHAPES[param]:
            problems.append(f"{name} has shape {tuple(tensor.shape)}, expected {SHAPES[param]}")

    for key in ("format", "model", "epoch"):
        if metadata.get(key) != expected[key]:
            problems.append(f"metadata {key} = {metadata.get(key)!r}, expected {expected[key]!r}")
    history = json.loads(metadata.get("history", "[]"))
    if [[name for name, _ in e["values"]] for e in history] != expected["history_names"]:
        problems.append(f"history {history}")
    losses = [dict(e["values"]).get("loss") for e in history]
    if losses != expected["losses"]:
        problems.append(f"history losses {losses}, expected {expected['losses']}")
    if optimizer is None or optimizer["algorithm"] != expected["algorithm"]:
        problems.append(f"optimizer metadata {optimizer}")
    elif optimizer["step"] != expected["step"]:
        problems.append(f"optimizer step {optimizer['step']}, expected {expected['step']}")

    if not problems:
        model = from_kiln(tensors)
        x = torch.tensor(expected["input"]).reshape(-1, H, W, C_IN).permute(0, 3, 1, 2)
        with torch.no_grad():
            y = model(x).flatten()
        kiln = torch.tensor(expected["output"])
        err = (y - kiln).abs().max().item()
        if not err <= 1e-5:
            problems.append(f"PyTorch's output differs from kiln's by {err}: {y} vs {kiln}")
    return problems


def main():
    path, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path) as f:
        expected = json.load(f)
    problems = check(path, expected)
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print("ok: kiln's checkpoint loads in PyTorch and gives kiln's output")


if __name__ == "__main__":
    main()
