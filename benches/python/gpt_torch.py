#!/usr/bin/env python3
"""PyTorch on the CPU: the peer of kiln's GPT benchmark (benches/benches/gpt.rs).

The model of examples/python/char_gpt_torch.py (nanoGPT's character model at its CPU
configuration: 4 pre-norm blocks of width 128, 4 causal heads through
scaled_dot_product_attention, a context of 64, 65 characters) and its training step
at batches of 12: forward, cross-entropy, backward, clipping to a global norm of 1,
AdamW with decay on the matrices only. Prints one JSON line with the median, min and
max tokens per second over several timed rounds.

    pip install torch numpy
    python3 benches/python/gpt_torch.py --threads 2
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python"))
from char_gpt_torch import CONTEXT, Gpt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Gpt(65, 4, 4, 128, bias=True, tied=False)
    params = list(model.parameters())
    opt = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=1e-3,
        betas=(0.9, 0.99),
    )
    n = args.batch * CONTEXT
    x = torch.tensor([(i * 7 + i // 5) % 65 for i in range(n)]).view(args.batch, CONTEXT)
    y = torch.tensor([(i * 7 + i // 5) % 65 for i in range(1, n + 1)]).view(args.batch, CONTEXT)

    def step():
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    rates = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.iters):
            step()
        rates.append(n * args.iters / (time.perf_counter() - start))
    rates.sort()
    print(json.dumps({
        "model": "gpt", "workload": "train_step", "batch": args.batch, "threads": args.threads,
        "torch": torch.__version__,
        "tokens_per_s_median": statistics.median(rates),
        "tokens_per_s_min": rates[0], "tokens_per_s_max": rates[-1],
    }))


if __name__ == "__main__":
    main()
