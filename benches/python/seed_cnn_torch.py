#!/usr/bin/env python3
"""The seed CNN in PyTorch on the CPU: the peer kiln's benchmarks compare against.

Measures, at a given batch size and thread count, images per second of
  - forward + backward (what kiln's `seed_cnn/forward_backward` bench measures),
  - a full training step (forward, loss, backward, Adam),
  - inference (forward under no_grad),
in PyTorch's fastest CPU configuration for this model (channels-last), and prints one
JSON line per workload with the median, min and max over several timed rounds.

    pip install torch numpy
    python3 benches/python/seed_cnn_torch.py --batch 64 --threads 2
"""

import argparse
import json
import statistics
import time

import torch

from seed_model import seed_cnn, workloads


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
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = seed_cnn().to(memory_format=torch.channels_last)
    x = torch.rand(args.batch, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))
    for name, fn in workloads(model, x, y, read_loss=False):
        seconds = timed(fn, args.iters, args.rounds)
        rates = sorted(args.batch / s for s in seconds)
        print(json.dumps({
            "workload": name, "batch": args.batch, "threads": args.threads,
            "torch": torch.__version__,
            "images_per_s_median": statistics.median(rates),
            "images_per_s_min": rates[0], "images_per_s_max": rates[-1],
        }))


if __name__ == "__main__":
    main()
