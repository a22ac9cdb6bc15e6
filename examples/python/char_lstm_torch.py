#!/usr/bin/env python3
"""kiln's `char_lstm` example in PyTorch, on the same text: the reference for its
validation loss and speed on the same machine.

The same model (65 characters embedded in 64 values, one LSTM layer of 256 units,
a linear layer and softmax over the next character at every step), the same data
(the characters sorted into ids, the first 90 % of the text to train on in random
windows of 64, the last 10 % read once in consecutive windows of 64, each from zero
states), the same optimisation (Adam, learning rate 2e-3, PyTorch's epsilon 1e-8,
gradients clipped to a global norm of 5, batches of 64), on the threads given.

    pip install torch numpy
    python3 examples/python/char_lstm_torch.py ../shared/data/text/tinyshakespeare.txt --steps 1000

Prints the training loss every 100 steps and, last, a `result: {json}` line with the
fields of the kiln example's.
"""

import argparse
import json
import math
import time

import numpy as np
import torch
from torch import nn

WINDOW = 64


class CharLstm(nn.Module):
    def __init__(self, vocabulary):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, 64)
        self.lstm = nn.LSTM(64, 256, batch_first=True)
        self.out = nn.Linear(256, vocabulary)
        # Keras's (and kiln's) initialisation, so that both start alike: uniform
        # +-0.05 embeddings, Glorot-uniform kernels, orthogonal recurrent kernels,
        # zero biases but the forget gate's 1.
        nn.init.uniform_(self.embed.weight, -0.05, 0.05)
        nn.init.xavier_uniform_(self.lstm.weight_ih_l0)
        for k in range(4):
            nn.init.orthogonal_(self.lstm.weight_hh_l0.data[k * 256:(k + 1) * 256])
        nn.init.zeros_(self.lstm.bias_ih_l0)
        nn.init.zeros_(self.lstm.bias_hh_l0)
        self.lstm.bias_ih_l0.data[256:512] = 1.0
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        h, _ = self.lstm(self.embed(x))
        return self.out(h)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--learning-rate", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    text = open(args.data, encoding="utf-8").read()
    chars = sorted(set(text))
    table = {c: i for i, c in enumerate(chars)}
    tokens = np.array([table[c] for c in text], np.int64)
    at = round(len(tokens) * 0.9)
    train, val = tokens[:at], tokens[at:]
    print(f"{args.data}: {len(tokens)} characters ({len(chars)} distinct), "
          f"{len(train)} to train, {len(val)} to validate")

    model = CharLstm(len(chars))
    opt = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    b = args.batch_size
    started = time.perf_counter()
    recent = 0.0
    for step in range(1, args.steps + 1):
        starts = rng.integers(0, len(train) - WINDOW, size=b)
        x = torch.from_numpy(np.stack([train[s:s + WINDOW] for s in starts]))
        y = torch.from_numpy(np.stack([train[s + 1:s + 1 + WINDOW] for s in starts]))
        logits = model(x)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        recent += loss.item()
        if step % 100 == 0 or step == args.steps:
            n = 100 if step % 100 == 0 else step % 100
            print(f"step {step:>5}: training loss {recent / n:.4f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
            recent = 0.0
    train_seconds = time.perf_counter() - started

    model.eval()
    count = (len(val) - 1) // WINDOW
    total, n = 0.0, 0
    with torch.no_grad():
        for g in range(0, count, b):
            rows = range(g, min(g + b, count))
            x = torch.from_numpy(np.stack([val[i * WINDOW:(i + 1) * WINDOW] for i in rows]))
            y = torch.from_numpy(np.stack([val[i * WINDOW + 1:(i + 1) * WINDOW + 1] for i in rows]))
            logits = model(x)
            total += nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            n += y.numel()
    val_loss = total / n
    tokens_per_second = args.steps * b * WINDOW / train_seconds
    print(f"validation loss {val_loss:.4f} nats per character ({val_loss / math.log(2):.3f} bits), "
          f"{tokens_per_second:.0f} training tokens/s")
    print("result: " + json.dumps({
        "val_loss": round(val_loss, 4),
        "train_seconds": round(train_seconds, 1),
        "tokens_per_second": round(tokens_per_second),
        "steps": args.steps,
    }))


if __name__ == "__main__":
    main()
