#!/usr/bin/env python3
"""PyTorch (CPU) oracle for kiln's moving average of the weights (`kiln_optim::Ema`).

Writes `pytorch_ema.json` next to this file. A small model with batch
normalisation (the `EmaNet` of `crates/train/tests/ema.rs`: Conv2d(2 -> 3, 3x3),
BatchNorm2d(3) (eps 1e-5, momentum 0.1), ReLU, Flatten, Linear(48 -> 2)) trains
for 8 steps of SGD (lr 0.1, momentum 0.9) on one fixed batch with a mean
squared error. After each step,
`torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=..., use_buffers=True)`
averages its parameters and its buffers (the running mean and variance; the
integer `num_batches_tracked` is left out of the file). Recorded after every
step: the model's tensors (its trajectory, which the kiln test loads into its
model before each `Ema::update`) and the averaged model's, both in kiln's
layouts (a convolution kernel [kh, kw, c_in, c_out], a dense kernel
[in, units]) under kiln's names.

Cases:
  * `decay_0.9`: get_ema_multi_avg_fn(0.9), averaged after every step
    (kiln: `Ema::new(0.9)`);
  * `decay_0.95_every_2_warmup_0.75`: averaged after every second step (t = 2,
    4, 6, 8), each time with get_ema_multi_avg_fn(d_t), d_t = min(0.95,
    1 - (1 + t) ** -0.75), timm's warm-up (kiln:
    `Ema::new(0.95).every(2).warmup(0.75)`).

The first update_parameters copies the model; later ones run
torch._foreach_lerp_(average, model, 1 - decay).

    /tmp/oracle-venv/bin/python crates/train/tests/oracle/pytorch_ema.py

Deterministic data (no RNG), computed in float64 then cast to float32,
i = flat row-major index in PyTorch's layout:
  * initial parameter k (in model.parameters() order): cos(0.23 i + k) * 0.3
  * the batch, NCHW [4, 2, 6, 6]: sin(0.37 i) * 0.9 + 0.1 * (i % 5)
  * the targets [4, 2]: cos(0.5 i)
"""

import json
import math
import os

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
STEPS = 8


def values(n, f):
    return torch.tensor([f(i) for i in range(n)], dtype=torch.float64).to(torch.float32)


def build():
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(2, 3, 3))
    model.add_module("bn1", nn.BatchNorm2d(3, eps=1e-5, momentum=0.1))
    model.add_module("relu", nn.ReLU())
    model.add_module("flat", nn.Flatten())
    model.add_module("out", nn.Linear(48, 2))
    with torch.no_grad():
        for k, p in enumerate(model.parameters()):
            p.copy_(values(p.numel(), lambda i: math.cos(0.23 * i + k) * 0.3).reshape(p.shape))
    return model


def kiln_layout(name, t):
    t = t.detach()
    if name == "conv1.weight":
        t = t.permute(2, 3, 1, 0)
    elif name == "out.weight":
        t = t.t()
    return t.contiguous()


def tensors(module):
    """Parameters then float buffers, as kiln's model visits them."""
    named = list(module.named_parameters()) + [
        (n, b) for n, b in module.named_buffers() if b.is_floating_point()]
    return {n: [float(f"{v:.9g}") for v in kiln_layout(n, t).reshape(-1).tolist()]
            for n, t in named}


def run(name, decay, every, warmup, kiln):
    torch.manual_seed(0)
    model = build()
    model.train()
    x = values(4 * 2 * 6 * 6, lambda i: math.sin(0.37 * i) * 0.9 + 0.1 * (i % 5)).reshape(4, 2, 6, 6)
    y = values(4 * 2, lambda i: math.cos(0.5 * i)).reshape(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=False)
    step = {"t": 0}

    def decay_now():
        if warmup is None:
            return decay
        return min(decay, 1 - (1 + step["t"]) ** -warmup)

    def multi_avg_fn(averages, current, n):
        get_ema_multi_avg_fn(decay_now())(averages, current, n)

    ema = AveragedModel(model, multi_avg_fn=multi_avg_fn, use_buffers=True)
    model_steps, ema_steps = [], []
    for t in range(1, STEPS + 1):
        step["t"] = t
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        if t % every == 0:
            ema.update_parameters(model)
        model_steps.append(tensors(model))
        ema_steps.append(tensors(ema.module))
    return {"name": name, "kiln": kiln, "model": model_steps, "ema": ema_steps}


cases = [
    run("decay_0.9", 0.9, 1, None, {"decay": 0.9, "every": 1, "warmup": None}),
    run("decay_0.95_every_2_warmup_0.75", 0.95, 2, 0.75,
        {"decay": 0.95, "every": 2, "warmup": 0.75}),
]

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "pytorch_ema.json"), "w") as f:
    json.dump({"torch": torch.__version__, "steps": STEPS, "cases": cases}, f,
              separators=(",", ":"))
print(f"{len(cases)} cases written with torch {torch.__version__}")
