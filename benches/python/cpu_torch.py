#!/usr/bin/env python3
"""PyTorch on the CPU: the peer of kiln's model benchmarks (benches/benches/models.rs).

Measures, for one model (`--model`, named as kiln's benchmark groups name it), at a
given batch size and thread count, images per second of
  - forward + backward (what kiln's `{model}_batch{batch}_threads{threads}/forward_backward`
    bench measures),
  - a full training step (forward, loss, backward, Adam),
  - inference (forward under no_grad),
in PyTorch's fastest CPU configuration for these models (channels-last), and prints one
JSON line per workload with the median, min and max over several timed rounds.

    pip install torch numpy
    python3 benches/python/cpu_torch.py --model small_resnet --batch 64 --threads 2
"""

import argparse
import json
import statistics
import time

import torch

from models import MODELS, workloads


def timed(fn, iters, rounds):
    for _ in range(3):
        fn()
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        per_round.append((time.perf_counter() - start) / iters)
    return per_round


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=sorted(MODELS), default="seed_cnn")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MODELS[args.model]().to(memory_format=torch.channels_last)
    x = torch.rand(args.batch, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))
    for name, fn in workloads(model, x, y, read_loss=False):
        seconds = timed(fn, args.iters, args.rounds)
        rates = sorted(args.batch / s for s in seconds)
        print(json.dumps({
            "model": args.model, "workload": name, "batch": args.batch, "threads": args.threads,
            "torch": torch.__version__,
            "images_per_s_median": statistics.median(rates),
            "images_per_s_min": rates[0], "images_per_s_max": rates[-1],
        }))


if __name__ == "__main__":
    main()
