#!/usr/bin/env python3
"""PyTorch (CPU) as the peer of kiln's language-model benchmarks
(`bench_char_lstm` in benches/benches/models.rs): the `char_lstm` example's network,
nn.Embedding(65, 64), nn.LSTM(64, 256, batch_first=True), nn.Linear(256, 65), on the
same thread count, printing one JSON line a workload with tokens per second (median,
min and max over several timed rounds):

  - `--model char_lstm`: the training step at `--batch` windows of 64 characters
    (forward, cross-entropy over every step read back, backward, Adam);
  - `--model char_lstm_generate`: generation at batch 1, one character in and the
    next one's distribution out under no_grad, the LSTM's state carried.

    python3 benches/python/lstm_torch.py --model char_lstm --batch 64 --threads 2
"""

import argparse
import json
import statistics
import time

import torch
from torch import nn

from cpu_torch import timed

WINDOW, VOCABULARY = 64, 65


class CharLstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCABULARY, 64)
        self.lstm = nn.LSTM(64, 256, batch_first=True)
        self.out = nn.Linear(256, VOCABULARY)

    def forward(self, x, state=None):
        y, state = self.lstm(self.embed(x), state)
        return self.out(y), state


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["char_lstm", "char_lstm_generate"], default="char_lstm")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = CharLstm()
    ids = (torch.arange(args.batch * WINDOW + 1) * 31 + 7) % VOCABULARY
    if args.model == "char_lstm":
        x = ids[:-1].reshape(args.batch, WINDOW)
        y = ids[1:].reshape(-1)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            logits, _ = model(x)
            loss = loss_fn(logits.reshape(-1, VOCABULARY), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()

        workload, fn, tokens = "train_step", step, args.batch * WINDOW
    else:
        state = None
        token = [0]

        @torch.no_grad()
        def generate():
            nonlocal state
            logits, state = model(torch.tensor([[token[0]]]), state)
            torch.softmax(logits[0, -1], dim=0)
            token[0] = (token[0] + 1) % VOCABULARY

        workload, fn, tokens = "inference", generate, 1
        args.iters *= 100
    seconds = timed(fn, args.iters, args.rounds)
    rates = sorted(tokens / s for s in seconds)
    print(json.dumps({
        "model": args.model, "workload": workload, "batch": args.batch,
        "threads": args.threads, "torch": torch.__version__,
        "tokens_per_s_median": statistics.median(rates),
        "tokens_per_s_min": rates[0], "tokens_per_s_max": rates[-1],
    }))


if __name__ == "__main__":
    main()
