#!/usr/bin/env python3
"""kiln's `cifar10_resnet` recipe in PyTorch, on the same files: the reference for its
accuracy and wall time on the same machine.

The same network (ResNet-9 at a reduced width, TensorFlow's `same` padding, batch
normalisation with Keras's momentum 0.99 and epsilon 1e-3), the same data (per-channel
normalisation, random crops of 4 zero-padded pixels, horizontal flips, optional
cutout), the same optimisation (Nesterov SGD with momentum 0.9, weight decay 5e-4 on
the weights but not on biases and normalisation parameters, a one-cycle schedule
rising linearly for a quarter of the steps then falling linearly, label smoothing
0.2), the same optional moving average of the weights and running statistics
(`--ema DECAY`, every 5 steps),
and the same evaluation (the mean of the outputs for each test image and its mirror).
PyTorch runs in its fastest CPU configuration for this network (channels-last) on
the threads given.

    pip install torch numpy
    python3 examples/python/cifar10_resnet_torch.py ../shared/data/cifar10

Prints a line an epoch and, last, a `result: {json}` line with the fields of the
kiln example's.
"""

import argparse
import gzip
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

MEAN = np.array([125.307, 122.950, 113.865], np.float32) / 255.0
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


def read_batch(folder, name):
    for path, opener in ((os.path.join(folder, name), open),
                         (os.path.join(folder, name + ".gz"), gzip.open)):
        if os.path.exists(path):
            with opener(path, "rb") as f:
                raw = np.frombuffer(f.read(), np.uint8).reshape(-1, 3073)
            images = raw[:, 1:].reshape(-1, 3, 32, 32)
            return images, raw[:, 0].astype(np.int64)
    raise FileNotFoundError(os.path.join(folder, name))


class Conv(nn.Module):
    """A 3x3 (or k x k) convolution with TensorFlow's `same` padding."""

    def __init__(self, cin, cout, k=3):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2)

    def forward(self, x):
        return self.conv(x)


def conv_bn(cin, cout):
    return nn.Sequential(Conv(cin, cout), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
                         nn.ReLU(inplace=True))


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.branch = nn.Sequential(conv_bn(c, c), conv_bn(c, c))

    def forward(self, x):
        return x + self.branch(x)


def resnet9(w):
    return nn.Sequential(
        conv_bn(3, w),
        conv_bn(w, 2 * w), nn.MaxPool2d(2),
        Residual(2 * w),
        conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
        conv_bn(4 * w, 8 * w), nn.MaxPool2d(2),
        Residual(8 * w),
        nn.MaxPool2d(4), nn.Flatten(), nn.Linear(8 * w, 10),
    )


def augment(x, cutout, generator):
    """Random crops of 4 zero-padded pixels, flips and cutout on a normalised batch."""
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=generator)
    dx = torch.randint(0, 9, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(32)[None, :])
    cols = (dx[:, None] + torch.arange(32)[None, :])
    idx = torch.arange(n)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(3)
    if cutout:
        cy = torch.randint(0, 32, (n,), generator=generator) - cutout // 2
        cx = torch.randint(0, 32, (n,), generator=generator) - cutout // 2
        r = torch.arange(32)
        mask = ((r[None, :] >= cy[:, None]) & (r[None, :] < cy[:, None] + cutout))[:, :, None] & \
               ((r[None, :] >= cx[:, None]) & (r[None, :] < cx[:, None] + cutout))[:, None, :]
        out = out * (~mask)[:, None, :, :]
    return out


def evaluate(model, x, y, batch):
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch].contiguous(memory_format=torch.channels_last)
            logits = (model(xb) + model(xb.flip(3))) / 2
            loss += F.cross_entropy(logits, y[i:i + batch], reduction="sum").item()
            correct += (logits.argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x), loss / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default="../shared/data/cifar10")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=26)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--ema", type=float, default=0.0)
    ap.add_argument("--cutout", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    train = [read_batch(args.data, f"data_batch_{i}.bin") for i in range(1, 6)]
    norm = lambda a: torch.from_numpy(((a / 255.0 - MEAN[None, :, None, None])
                                       / STD[None, :, None, None]).astype(np.float32))
    x_train = norm(np.concatenate([x for x, _ in train]))
    y_train = torch.from_numpy(np.concatenate([y for _, y in train]))
    x_test, y_test = read_batch(args.data, "test_batch.bin")
    x_test, y_test = norm(x_test), torch.from_numpy(y_test)

    model = resnet9(args.width).to(memory_format=torch.channels_last)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.dim() == 1 else decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=args.lr, momentum=0.9, nesterov=True)
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.25,
        anneal_strategy="linear", div_factor=20.0, final_div_factor=200.0,
        three_phase=False, cycle_momentum=False)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema),
                        use_buffers=True) if args.ema > 0 else None
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2)

    start = time.perf_counter()
    step = 0
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_train), generator=generator)
        seen, total = 0, 0.0
        t0 = time.perf_counter()
        for i in range(0, len(x_train), args.batch_size):
            idx = perm[i:i + args.batch_size]
            xb = augment(x_train[idx], args.cutout, generator)
            xb = xb.contiguous(memory_format=torch.channels_last)
            loss = loss_fn(model(xb), y_train[idx])
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if ema is not None and step % 5 == 0:
                ema.update_parameters(model)
            seen += len(idx)
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / seen:.4f}, "
              f"{seen / (time.perf_counter() - t0):.0f} images/s", flush=True)
    seconds = time.perf_counter() - start
    accuracy, test_loss = evaluate(ema.module if ema is not None else model,
                                   x_test, y_test, 500)
    print("result: " + json.dumps({
        "test_accuracy": round(accuracy, 4), "test_loss": round(test_loss, 4),
        "train_seconds": round(seconds, 2), "epochs": args.epochs,
        "images_per_second": round(args.epochs * len(x_train) / seconds),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
