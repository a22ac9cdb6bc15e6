#!/usr/bin/env python3
"""PyTorch (CPU) oracle for AdamW with parameter groups, nanoGPT's warm-up and
cosine schedule, clipping by global norm and gradient accumulation, composed in
kiln's `fit` (`crates/train/tests/compose.rs`).

Writes `pytorch_compose.json` next to this file.

The model (kiln's `Composed` in the test): Embedding(10, 6) over 4 tokens,
Linear(6, 6) at every position then tanh (kiln's `TimeDense(6, tanh)`),
Flatten, BatchNorm1d(24) (eps 1e-5, momentum 0.1), Linear(24, 10); the loss is
the cross-entropy of the logits against a class (`F.cross_entropy`).

The optimizer is nanoGPT's: torch.optim.AdamW(betas=(0.9, 0.99), eps=1e-8) with
two parameter groups, weight decay 0.1 on the matrices (the embedding's table
and both kernels) and none on the biases and the batch norm's scale and shift;
the learning rate of update `it` (0 for the first) is nanoGPT's `get_lr(it)`
(linear warm-up over `warmup_iters`, cosine decay to `min_lr` at
`lr_decay_iters`, `min_lr` after) through a LambdaLR; before each update the
gradients are clipped to a global norm of 1.0 with
torch.nn.utils.clip_grad_norm_.

164 samples, unshuffled, one epoch. Cases:
  * `batch_12`: batches of 12 (13 of 12, then a last one of 8): 14 updates;
  * `accumulate_3`: micro-batches of 4 with their gradients summed over 3 of
    them before each update (41 micro-batches: 13 updates over 12 samples, a
    last one over the remaining 2 micro-batches, 8 samples). Each micro-batch's
    mean loss is scaled by its share of its update's samples (4 / 12; 4 / 8 in
    the last), so each update's gradient is the mean over its samples, as in
    one batch of them. The batch norm still normalises each micro-batch by its
    own statistics, so this case's weights are not `batch_12`'s.

Recorded for each case: after every update, every parameter in kiln's layouts
(a dense kernel [in, units]) under kiln's names; the learning rate each update
used and the global norm of the gradients before clipping.

Deterministic data (no RNG), float64 then float32, i = flat row-major index in
PyTorch's layout:
  * initial parameter k (in model.parameters() order): cos(0.23 i + k) * 0.5
  * token t of sample s: (7 s + 3 t + (s * t) // 5) % 10
  * the class of sample s: (token 0 + 2 * token 3 + s // 41) % 10

    /tmp/torchenv/bin/python crates/train/tests/oracle/pytorch_compose.py
"""

import json
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

SAMPLES = 164
TIME = 4
VOCAB = 10
LEARNING_RATE = 0.05
WARMUP_ITERS = 3
LR_DECAY_ITERS = 10
MIN_LR = 0.005
WEIGHT_DECAY = 0.1
CLIP = 1.0


def get_lr(it):
    """nanoGPT's train.py."""
    if it < WARMUP_ITERS:
        return LEARNING_RATE * (it + 1) / (WARMUP_ITERS + 1)
    if it > LR_DECAY_ITERS:
        return MIN_LR
    decay_ratio = (it - WARMUP_ITERS) / (LR_DECAY_ITERS - WARMUP_ITERS)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return MIN_LR + coeff * (LEARNING_RATE - MIN_LR)


class Composed(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 6)
        self.mix = nn.Linear(6, 6)
        self.norm = nn.BatchNorm1d(TIME * 6, eps=1e-5, momentum=0.1)
        self.out = nn.Linear(TIME * 6, VOCAB)
        with torch.no_grad():
            for k, p in enumerate(self.parameters()):
                i = torch.arange(p.numel(), dtype=torch.float64)
                p.copy_((torch.cos(0.23 * i + k) * 0.5).to(torch.float32).reshape(p.shape))

    def forward(self, tokens):
        h = torch.tanh(self.mix(self.embed(tokens)))
        return self.out(self.norm(h.flatten(1)))


def data():
    tokens = [[(7 * s + 3 * t + (s * t) // 5) % VOCAB for t in range(TIME)] for s in range(SAMPLES)]
    labels = [(row[0] + 2 * row[3] + s // 41) % VOCAB for s, row in enumerate(tokens)]
    return torch.tensor(tokens), torch.tensor(labels)


def kiln_layout(name, t):
    t = t.detach()
    if name in ("mix.weight", "out.weight"):
        t = t.t()
    return t.contiguous()


def tensors(model):
    return {n: [float(f"{v:.9g}") for v in kiln_layout(n, p).reshape(-1).tolist()]
            for n, p in model.named_parameters()}


def run(micro, accumulate):
    torch.manual_seed(0)
    model = Composed()
    initial = tensors(model)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=LEARNING_RATE, betas=(0.9, 0.99), eps=1e-8)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: get_lr(it) / LEARNING_RATE)
    tokens, labels = data()
    starts = list(range(0, SAMPLES, micro))
    windows = [starts[w:w + accumulate] for w in range(0, len(starts), accumulate)]
    trajectory, rates, norms = [], [], []
    model.train()
    for window in windows:
        samples = sum(min(micro, SAMPLES - s) for s in window)
        optimizer.zero_grad(set_to_none=True)
        for s in window:
            x, y = tokens[s:s + micro], labels[s:s + micro]
            loss = F.cross_entropy(model(x), y) * (len(x) / samples)
            loss.backward()
        rates.append(optimizer.param_groups[0]["lr"])
        norms.append(float(nn.utils.clip_grad_norm_(model.parameters(), CLIP)))
        optimizer.step()
        scheduler.step()
        trajectory.append(tensors(model))
    return {"micro_batch": micro, "accumulate": accumulate, "initial": initial,
            "learning_rates": rates, "grad_norms": norms, "weights": trajectory}


def main():
    tokens, labels = data()
    out = {
        "samples": SAMPLES,
        "tokens": tokens.reshape(-1).tolist(),
        "labels": labels.tolist(),
        "schedule": {"learning_rate": LEARNING_RATE, "warmup_iters": WARMUP_ITERS,
                     "lr_decay_iters": LR_DECAY_ITERS, "min_lr": MIN_LR},
        "cases": {"batch_12": run(12, 1), "accumulate_3": run(4, 3)},
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytorch_compose.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    for name, case in out["cases"].items():
        norms = ", ".join(f"{n:.3f}" for n in case["grad_norms"])
        print(name, len(case["weights"]), "updates; norms", norms)


if __name__ == "__main__":
    main()
