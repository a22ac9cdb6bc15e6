"""The oracle of `tests/lr_find.rs`: fastai's learning-rate finder rules, rewritten
from fastai 2.7's `callback/schedule.py` (`LRFinder`, `valley`, `minimum`, `steep`)
and `Learner.lr_find`, with its smoothing from `learner.py` (`AvgSmoothLoss`), run on
loss curves that kiln recorded (raw batch losses at each step's rate).

    python lr_find_oracle.py recorded.json lr_find_curves.json

reads `{"curves": [{"name", "steps", "learning_rates", "raw_losses"}]}` and writes the
same curves with what fastai would suggest ("expected"). Arithmetic in float64
(fastai keeps its curves in float32 tensors; the suggestions' indices agree unless two
slopes tie to 1e-7).
"""

import json
import math
import sys


def smooth(raw, beta=0.98, diverge=4.0):
    """AvgSmoothLoss (debiased EMA) with LRFinder's stop: returns the smoothed losses
    recorded before the sweep stops (the point that diverges is recorded)."""
    val, best, out = 0.0, math.inf, []
    for count, loss in enumerate(raw, start=1):
        val = val * beta + loss * (1 - beta)  # torch.lerp(loss, val, beta)
        value = val / (1 - beta ** count)
        out.append(value)
        if value < best:
            best = value
        if math.isnan(value) or value > diverge * best:
            break
    return out


def valley(lrs, losses):
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return lrs[idx]


def argmin(xs):
    best = 0
    for i, x in enumerate(xs):
        if x < xs[best]:
            best = i
    return best


def minimum(lrs, losses):
    return lrs[argmin(losses)] / 10


def steep(lrs, losses):
    grads = [
        (losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i]))
        for i in range(len(losses) - 1)
    ]
    return lrs[argmin(grads)]


def suggest(curve):
    steps = curve["steps"]
    losses = smooth(curve["raw_losses"])
    lrs = curve["learning_rates"][: len(losses)]
    # Learner.lr_find: drop the first tenth of the planned steps and the last 5 points,
    # then everything from the first NaN.
    lrs, losses = lrs[steps // 10 : -5], losses[steps // 10 : -5]
    bad = [i for i, x in enumerate(losses) if not math.isfinite(x)]
    if bad:
        lrs, losses = lrs[: bad[0]], losses[: bad[0]]
    return {
        "recorded": len(smooth(curve["raw_losses"])),
        "valley": valley(lrs, losses),
        "minimum": minimum(lrs, losses),
        "steep": steep(lrs, losses),
    }


def main():
    with open(sys.argv[1]) as f:
        recorded = json.load(f)
    for curve in recorded["curves"]:
        curve["expected"] = suggest(curve)
    with open(sys.argv[2], "w") as f:
        json.dump(recorded, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
