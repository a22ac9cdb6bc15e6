#!/usr/bin/env python3
"""kiln's `char_gpt` example in PyTorch, on the same text: nanoGPT's character model
(Karpathy's model.py, written out in plain PyTorch) at its README's CPU
configuration, the reference for kiln's validation loss and speed on the same
machine.

The model: 65 characters embedded in 128 values plus a learned position embedding
of 64 rows; 4 pre-norm blocks (LayerNorm, causal self-attention of 4 heads with one
packed query/key/value projection and an output projection, residual; LayerNorm, an
MLP of 512 with GELU, residual); a last LayerNorm and a linear layer to the 65
characters. As kiln's `char_gpt`, the layers have biases and the output layer is
not tied to the embedding (`--nanogpt` gives nanoGPT's defaults instead: no biases,
tied weights). nanoGPT's initialisation: normal(0, 0.02), the residual projections
scaled by 1 / sqrt(2 * layers).

The data: the characters sorted into ids, the first 90 % of the text to train on in
random windows of 64, the last 10 % read once in consecutive windows of 64. The
optimisation: AdamW (betas 0.9, 0.99; weight decay 0.1 on the tensors of two or more
dimensions), 2,000 steps of batches of 12, the learning rate warmed up to 1e-3 over
100 steps then down a cosine to 1e-4, gradients clipped to a norm of 1, on the
threads given.

    pip install torch numpy
    python3 examples/python/char_gpt_torch.py ../shared/data/text/tinyshakespeare.txt --steps 2000

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
from torch.nn import functional as F

CONTEXT = 64


class SelfAttention(nn.Module):
    def __init__(self, width, heads, bias):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(width, 3 * width, bias=bias)
        self.c_proj = nn.Linear(width, width, bias=bias)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class Block(nn.Module):
    def __init__(self, width, heads, bias):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, bias=bias)
        self.attn = SelfAttention(width, heads, bias)
        self.ln_2 = nn.LayerNorm(width, bias=bias)
        self.c_fc = nn.Linear(width, 4 * width, bias=bias)
        self.c_proj = nn.Linear(4 * width, width, bias=bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))


class Gpt(nn.Module):
    def __init__(self, vocabulary, layers, heads, width, bias, tied):
        super().__init__()
        self.wte = nn.Embedding(vocabulary, width)
        self.wpe = nn.Embedding(CONTEXT, width)
        self.blocks = nn.ModuleList(Block(width, heads, bias) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width, bias=bias)
        self.lm_head = nn.Linear(width, vocabulary, bias=not tied and bias)
        if tied:
            self.wte.weight = self.lm_head.weight
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, x):
        pos = torch.arange(x.shape[1], device=x.device)
        h = self.wte(x) + self.wpe(pos)
        for block in self.blocks:
            h = block(h)
        return self.lm_head(self.ln_f(h))


def learning_rate(step, args):
    """nanoGPT's get_lr."""
    if step < args.warmup:
        return args.learning_rate * (step + 1) / (args.warmup + 1)
    if step > args.steps:
        return args.min_learning_rate
    ratio = (step - args.warmup) / max(args.steps - args.warmup, 1)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return args.min_learning_rate + coeff * (args.learning_rate - args.min_learning_rate)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--min-learning-rate", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--nanogpt", action="store_true", help="no biases, output tied to the embedding")
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

    model = Gpt(len(chars), args.layers, args.heads, args.width, bias=not args.nanogpt, tied=args.nanogpt)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=args.learning_rate, betas=(0.9, 0.99))
    print(f"{sum(p.numel() for p in params)} parameters")
    b = args.batch_size
    started = time.perf_counter()
    recent = 0.0
    for step in range(1, args.steps + 1):
        for g in opt.param_groups:
            g["lr"] = learning_rate(step - 1, args)
        starts = rng.integers(0, len(train) - CONTEXT, size=b)
        x = torch.from_numpy(np.stack([train[s:s + CONTEXT] for s in starts]))
        y = torch.from_numpy(np.stack([train[s + 1:s + 1 + CONTEXT] for s in starts]))
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent += loss.item()
        if step % 100 == 0 or step == args.steps:
            n = 100 if step % 100 == 0 else step % 100
            print(f"step {step:>5}: training loss {recent / n:.4f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
            recent = 0.0
    train_seconds = time.perf_counter() - started

    model.eval()
    count = (len(val) - 1) // CONTEXT
    total, n = 0.0, 0
    with torch.no_grad():
        for g in range(0, count, b):
            rows = range(g, min(g + b, count))
            x = torch.from_numpy(np.stack([val[i * CONTEXT:(i + 1) * CONTEXT] for i in rows]))
            y = torch.from_numpy(np.stack([val[i * CONTEXT + 1:(i + 1) * CONTEXT + 1] for i in rows]))
            logits = model(x)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            n += y.numel()
    val_loss = total / n
    tokens_per_second = args.steps * b * CONTEXT / train_seconds
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
