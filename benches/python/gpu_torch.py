#!/usr/bin/env python3
"""PyTorch on the GPU: the peer of kiln's GPU benchmark (benches/benches/gpu.rs).

Measures on the first CUDA device, in fp32 (TF32 off for cuBLAS and cuDNN, so that
both sides do the arithmetic kiln does; `--tf32` turns it on for reference):
  - cuBLAS SGEMM (torch.mm) on square products of side 1024, 2048 and 4096, in FLOP/s;
  - the seed CNN's training step (forward, cross-entropy, backward, Adam, and
    loss.item() each step, as a training loop reads its loss), its forward + backward
    alone, and inference, eager, at batch 64 and 1024, in images/s.
Prints one JSON line per workload: the median, min and max over timed rounds.

    python3 benches/python/gpu_torch.py
"""

import argparse
import json
import statistics
import time

import torch

from models import seed_cnn, workloads


def timed(fn, iters, rounds):
    """Seconds per call of `fn` in each round, the GPU waited for around each round."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
        per_round.append((time.perf_counter() - start) / iters)
    return per_round


def line(workload, unit, work, seconds, **extra):
    rates = sorted(work / s for s in seconds)
    return json.dumps({
        "workload": workload, "unit": unit, "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0), "tf32": torch.backends.cudnn.allow_tf32,
        "median": statistics.median(rates), "min": rates[0], "max": rates[-1], **extra,
    })


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tf32", action="store_true")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    dev = torch.device("cuda:0")
    torch.manual_seed(0)

    for side in (1024, 2048, 4096):
        a = torch.rand(side, side, device=dev)
        b = torch.rand(side, side, device=dev)
        out = torch.empty(side, side, device=dev)
        iters = max(3, (4096 // side) ** 3)
        seconds = timed(lambda: torch.mm(a, b, out=out), iters, args.rounds)
        print(line(f"sgemm_{side}", "FLOP/s", 2.0 * side ** 3, seconds, side=side), flush=True)

    for batch in (64, 1024):
        model = seed_cnn().to(dev)
        x = torch.rand(batch, 3, 32, 32, device=dev)
        y = torch.randint(0, 10, (batch,), device=dev)
        iters = 50 if batch == 64 else 10
        for name, fn in workloads(model, x, y, read_loss=True):
            seconds = timed(fn, iters, args.rounds)
            print(line(f"seed_cnn_{name}", "images/s", batch, seconds, batch=batch), flush=True)


if __name__ == "__main__":
    main()
