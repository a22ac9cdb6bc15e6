#!/usr/bin/env python3
"""PyTorch's Adam on the CPU over one million parameters: the peer of kiln's
`optimizer_1m_threads{N}/adam` benchmark, with PyTorch's own copy of the same memory
as its bandwidth ceiling.

Prints one JSON line per workload: median, min and max seconds per step over several
timed rounds, and the bytes each step moves (Adam: parameter, gradient and two moments
read, three written; copy: one read, one write).

    pip install torch
    python3 benches/python/optim_torch.py --threads 2
"""

import argparse
import json
import statistics
import time

import torch

PARAMS = 1 << 20


def timed(fn, iters, rounds):
    for _ in range(5):
        fn()
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        per_round.append((time.perf_counter() - start) / iters)
    return sorted(per_round)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    i = torch.arange(PARAMS, dtype=torch.float32)
    p = torch.nn.Parameter(torch.sin(i * 1e-3))
    p.grad = torch.cos(i * 7e-4)
    dst = torch.empty_like(p)
    workloads = {}
    for foreach in (True, False):
        opt = torch.optim.Adam([p], lr=1e-3, eps=1e-7, foreach=foreach)
        workloads["adam_foreach" if foreach else "adam_single_tensor"] = (opt.step, 7 * 4 * PARAMS)
    workloads["copy"] = (lambda: dst.copy_(p.grad), 2 * 4 * PARAMS)
    for name, (fn, bytes_moved) in workloads.items():
        with torch.no_grad():
            seconds = timed(fn, args.iters, args.rounds)
        print(json.dumps({
            "workload": name,
            "threads": args.threads,
            "torch": torch.__version__,
            "bytes": bytes_moved,
            "seconds_median": statistics.median(seconds),
            "seconds_min": seconds[0],
            "seconds_max": seconds[-1],
        }))


if __name__ == "__main__":
    main()
