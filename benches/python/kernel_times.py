#!/usr/bin/env python3
"""Each kernel's share of kiln's training step on the GPU, from Nsight Compute.

Reads the CSV that `ncu --csv --page raw --metrics gpu__time_duration.sum` wrote for
the kernels of `steps` steady training steps (the GPU run script profiles two), and
prints, per kernel name, its launches a step, its time a step and its grid, largest
first, with the step's total. ncu runs the kernels one at a time, so the total is the
step's kernel time with no overlap and no launch gaps: next to the step's measured
time it says how much a CUDA graph or fewer launches could still win.

    python3 kernel_times.py NCU_CSV --steps 2
"""

import argparse
import csv
import sys


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("csv")
    args.add_argument("--steps", type=int, default=2)
    a = args.parse_args()
    with open(a.csv, newline="") as f:
        rows = list(csv.reader(line for line in f if line.startswith('"')))
    if len(rows) < 3:
        sys.exit(f"{a.csv}: no kernel rows (did ncu run?)")
    header, data = rows[0], rows[2:]  # the second row holds the units
    name, grid = header.index("Kernel Name"), header.index("Grid Size")
    time = header.index("gpu__time_duration.sum")
    kernels = {}
    for r in data:
        ns = float(r[time].replace(",", ""))
        k = kernels.setdefault(r[name], {"ns": 0.0, "launches": 0, "grids": []})
        k["ns"] += ns
        k["launches"] += 1
        if r[grid] not in k["grids"]:
            k["grids"].append(r[grid])
    total = sum(k["ns"] for k in kernels.values()) / a.steps
    launches = sum(k["launches"] for k in kernels.values()) / a.steps
    print(f"{'us a step':>10} {'share':>6} {'launches':>8}  kernel (grids)")
    for n, k in sorted(kernels.items(), key=lambda kv: -kv[1]["ns"]):
        us = k["ns"] / a.steps / 1000
        print(
            f"{us:10.1f} {100 * us * 1000 / total:5.1f}% {k['launches'] / a.steps:8.0f}  "
            f"{n} ({' '.join(k['grids'])})"
        )
    print(f"{total / 1000:10.1f} 100.0% {launches:8.0f}  all kernels, one at a time")


if __name__ == "__main__":
    main()
