#!/usr/bin/env python3
"""PyTorch (CPU) oracle for kiln's optimizers and learning-rate schedules.

Writes `pytorch_optim.json` next to this file. Every case runs 25 updates of
`torch.optim` (single-tensor code, `foreach=False`) on two float32 tensors
(`dense.weight` [3, 4] and `dense.bias` [5]) with fixed gradients, and records
the learning rate of every step and both tensors after every step.

How to run (Python >= 3.9 with torch and numpy; CPU is enough):

    python3 -m venv /tmp/oracle-venv
    /tmp/oracle-venv/bin/pip install torch numpy
    /tmp/oracle-venv/bin/python crates/optim/tests/oracle/pytorch_optim.py

Data (no RNG), computed in float64 then cast to float32, i = flat index:
  * initial values of tensor k: cos(0.23 i + k) * 0.5
  * gradient of tensor k at step t (from 0): sin(0.37 i + 0.11 t + k) * 1.5
    (joint norm about 4.7 and per-tensor norms about 3.6 and 3.0, so clipping
    at 1.0 acts).
Clipping uses torch.nn.utils.clip_grad_value_ / clip_grad_norm_ (per tensor:
one call per tensor) before `optimizer.step()`. Lion is not in torch.optim: it
is written out from the paper (decoupled decay, sign of the interpolation,
then the momentum update) with torch tensor ops.

The `*_groups*` cases put the two tensors in two `param_groups`: the weight
with the optimizer's settings, the bias with its own `lr` (a multiple of the
optimizer's: kiln's `learning_rate_scale`) and, but in `adam_groups_lr_only`,
`weight_decay=0` (kiln: `ParamGroup::new().names(["*.bias"])`). Under
OneCycleLR the bias's `max_lr` is the same multiple of the weight's.
"""

import json
import math
import os

import torch

torch.set_num_threads(1)
STEPS = 25
SHAPES = [("dense.weight", (3, 4)), ("dense.bias", (5,))]


def tensor(n, f):
    return torch.tensor([f(i) for i in range(n)], dtype=torch.float64).to(torch.float32)


def initial():
    out = []
    for k, (_, shape) in enumerate(SHAPES):
        n = math.prod(shape)
        out.append(tensor(n, lambda i: math.cos(0.23 * i + k) * 0.5).reshape(shape))
    return out


def grads(t):
    out = []
    for k, (_, shape) in enumerate(SHAPES):
        n = math.prod(shape)
        out.append(tensor(n, lambda i: math.sin(0.37 * i + 0.11 * t + k) * 1.5).reshape(shape))
    return out


def f32(v):
    return float(f"{float(v):.9g}")


def flat(t):
    return [f32(v) for v in t.detach().reshape(-1).tolist()]


class Lion(torch.optim.Optimizer):
    def __init__(self, params, lr, betas, weight_decay):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                m = state["exp_avg"]
                p.mul_(1 - group["lr"] * group["weight_decay"])
                c = m * b1 + p.grad * (1 - b1)
                p.add_(torch.sign(c), alpha=-group["lr"])
                m.mul_(b2).add_(p.grad, alpha=1 - b2)


def run(name, make_optimizer, kiln, make_scheduler=None, clip=None, plateau=None):
    params = [t.clone().requires_grad_() for t in initial()]
    opt = make_optimizer(params)
    sched = make_scheduler(opt) if make_scheduler else None
    lrs, trajectory = [], []
    for t in range(STEPS):
        for p, g in zip(params, grads(t)):
            p.grad = g.clone()
        if clip is not None:
            kind, bound = clip
            if kind == "value":
                torch.nn.utils.clip_grad_value_(params, bound)
            elif kind == "norm":
                for p in params:
                    torch.nn.utils.clip_grad_norm_([p], bound)
            else:
                torch.nn.utils.clip_grad_norm_(params, bound)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        trajectory.append([flat(p) for p in params])
        if sched is not None:
            if plateau is not None:
                sched.step(plateau[t])
            else:
                sched.step()
    return {
        "name": name,
        "kiln": kiln,
        "clip": list(clip) if clip else None,
        "plateau": plateau,
        "lrs": lrs,
        "trajectory": trajectory,
    }


def sgd(lr, **kw):
    return lambda ps: torch.optim.SGD(ps, lr=lr, foreach=False, **kw)


def two_groups(make, lr, scale, weight_decay=0.0):
    """`make` over [weight] with the defaults and [bias] with lr * scale and, unless
    None, its own weight decay."""
    def build(ps):
        bias = {"params": [ps[1]], "lr": lr * scale}
        if weight_decay is not None:
            bias["weight_decay"] = weight_decay
        return make([{"params": [ps[0]]}, bias])
    return build


def bias_group(scale, weight_decay=0.0):
    group = {"names": ["*.bias"], "learning_rate_scale": scale}
    if weight_decay is not None:
        group["weight_decay"] = weight_decay
    return [group]


cases = [
    run("sgd", sgd(0.1), {"algorithm": "sgd", "lr": 0.1}),
    run("sgd_momentum", sgd(0.05, momentum=0.9), {"algorithm": "sgd", "lr": 0.05, "momentum": 0.9}),
    run("sgd_nesterov_weight_decay", sgd(0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
        {"algorithm": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}),
    run("adam", lambda ps: torch.optim.Adam(ps, lr=1e-2, foreach=False),
        {"algorithm": "adam", "lr": 1e-2, "eps": 1e-8}),
    run("adam_keras_epsilon", lambda ps: torch.optim.Adam(ps, lr=1e-3, eps=1e-7, foreach=False),
        {"algorithm": "adam", "lr": 1e-3, "eps": 1e-7}),
    run("adam_amsgrad_weight_decay",
        lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99), amsgrad=True, weight_decay=1e-2, foreach=False),
        {"algorithm": "adam", "lr": 1e-2, "beta1": 0.8, "beta2": 0.99, "eps": 1e-8, "amsgrad": True, "weight_decay": 1e-2}),
    run("adamw", lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1, foreach=False),
        {"algorithm": "adamw", "lr": 1e-2, "eps": 1e-8, "decoupled_weight_decay": 0.1}),
    run("rmsprop", lambda ps: torch.optim.RMSprop(ps, lr=1e-2, foreach=False),
        {"algorithm": "rmsprop", "lr": 1e-2, "rho": 0.99, "eps": 1e-8}),
    run("rmsprop_momentum_centered",
        lambda ps: torch.optim.RMSprop(ps, lr=1e-2, alpha=0.9, momentum=0.9, centered=True, foreach=False),
        {"algorithm": "rmsprop", "lr": 1e-2, "rho": 0.9, "eps": 1e-8, "momentum": 0.9, "centered": True}),
    run("rmsprop_centered",
        lambda ps: torch.optim.RMSprop(ps, lr=1e-3, alpha=0.9, eps=1e-7, centered=True, foreach=False),
        {"algorithm": "rmsprop", "lr": 1e-3, "rho": 0.9, "eps": 1e-7, "centered": True}),
    run("adagrad",
        lambda ps: torch.optim.Adagrad(ps, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, foreach=False),
        {"algorithm": "adagrad", "lr": 0.1, "lr_decay": 0.01, "initial_accumulator": 0.1, "eps": 1e-10}),
    run("nadam", lambda ps: torch.optim.NAdam(ps, lr=2e-3, foreach=False),
        {"algorithm": "nadam", "lr": 2e-3, "eps": 1e-8}),
    run("nadam_weight_decay", lambda ps: torch.optim.NAdam(ps, lr=1e-2, weight_decay=1e-2, eps=1e-7, foreach=False),
        {"algorithm": "nadam", "lr": 1e-2, "eps": 1e-7, "weight_decay": 1e-2}),
    run("lion", lambda ps: Lion(ps, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1),
        {"algorithm": "lion", "lr": 1e-2, "decoupled_weight_decay": 0.1}),
    run("sgd_clip_value", sgd(0.1), {"algorithm": "sgd", "lr": 0.1}, clip=("value", 0.5)),
    run("adam_clip_norm", lambda ps: torch.optim.Adam(ps, lr=1e-2, foreach=False),
        {"algorithm": "adam", "lr": 1e-2, "eps": 1e-8}, clip=("norm", 1.0)),
    run("sgd_clip_global_norm", sgd(0.1, momentum=0.5), {"algorithm": "sgd", "lr": 0.1, "momentum": 0.5},
        clip=("global_norm", 1.0)),
    run("step_decay", sgd(1.0), {"algorithm": "sgd", "lr": 1.0, "schedule": "step"},
        make_scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.5)),
    run("exponential_decay", sgd(1.0), {"algorithm": "sgd", "lr": 1.0, "schedule": "exponential"},
        make_scheduler=lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)),
    run("polynomial_decay", sgd(1.0), {"algorithm": "sgd", "lr": 1.0, "schedule": "polynomial"},
        make_scheduler=lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=15, power=2.0)),
    run("cosine_warmup", sgd(0.5), {"algorithm": "sgd", "lr": 0.5, "schedule": "cosine_warmup"},
        make_scheduler=lambda o: torch.optim.lr_scheduler.SequentialLR(
            o,
            [torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=5),
             torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=1e-3)],
            milestones=[5])),
    run("one_cycle", sgd(0.5), {"algorithm": "sgd", "lr": 0.5, "schedule": "one_cycle"},
        make_scheduler=lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, max_lr=0.5, total_steps=STEPS, cycle_momentum=False)),
    run("reduce_on_plateau", sgd(1.0), {"algorithm": "sgd", "lr": 1.0, "schedule": "plateau"},
        make_scheduler=lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(
            o, factor=0.5, patience=2, threshold=1e-2, cooldown=1),
        plateau=[1.0, 0.9, 0.85, 0.86, 0.849, 0.848, 0.9, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75,
                 0.5, 0.5, 0.5, 0.5, 0.5, 0.49, 0.4, 0.41, 0.42, 0.43, 0.44, 0.45]),
    run("sgd_momentum_weight_decay_groups",
        two_groups(sgd(0.05, momentum=0.9, weight_decay=1e-2), 0.05, 0.5),
        {"algorithm": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-2,
         "groups": bias_group(0.5)}),
    run("sgd_nesterov_weight_decay_groups",
        two_groups(sgd(0.05, momentum=0.9, nesterov=True, weight_decay=1e-2), 0.05, 0.5),
        {"algorithm": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2,
         "groups": bias_group(0.5)}),
    run("adamw_groups",
        two_groups(lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1, foreach=False), 1e-2, 0.5),
        {"algorithm": "adamw", "lr": 1e-2, "eps": 1e-8, "decoupled_weight_decay": 0.1,
         "groups": bias_group(0.5)}),
    run("adam_groups_lr_only",
        two_groups(lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-2, foreach=False), 1e-2, 2.0,
                   weight_decay=None),
        {"algorithm": "adam", "lr": 1e-2, "eps": 1e-8, "weight_decay": 1e-2,
         "groups": bias_group(2.0, weight_decay=None)}),
    run("sgd_nesterov_groups_one_cycle",
        two_groups(sgd(0.5, momentum=0.9, nesterov=True, weight_decay=5e-4), 0.5, 0.5),
        {"algorithm": "sgd", "lr": 0.5, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
         "schedule": "one_cycle", "groups": bias_group(0.5)},
        make_scheduler=lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, max_lr=[0.5, 0.25], total_steps=STEPS, cycle_momentum=False)),
]

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "pytorch_optim.json"), "w") as f:
    json.dump({
        "torch": torch.__version__,
        "steps": STEPS,
        "tensors": [{"name": n, "shape": list(s)} for n, s in SHAPES],
        "initial": [flat(t) for t in initial()],
        "grads": [[flat(g) for g in grads(t)] for t in range(STEPS)],
        "cases": cases,
    }, f, separators=(",", ":"))
print(f"{len(cases)} cases written with torch {torch.__version__}")
