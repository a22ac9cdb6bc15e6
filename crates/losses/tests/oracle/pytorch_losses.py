#!/usr/bin/env python3
"""PyTorch (CPU) oracle for kiln's losses.

Writes `pytorch_losses.json` next to this file: a list of cases, each with the
loss's options, the model output kiln receives, the targets (and weights), and
the value and gradient that PyTorch computes in float32 with autograd.

How to run (Python >= 3.9 with torch and numpy; CPU is enough):

    python3 -m venv /tmp/oracle-venv
    /tmp/oracle-venv/bin/pip install torch numpy
    /tmp/oracle-venv/bin/python crates/losses/tests/oracle/pytorch_losses.py

Conventions that map kiln onto PyTorch:
  * A sample's value is the mean over its features for the regression and
    binary losses (Keras), the sum over classes for the categorical ones, so
    `mean` is PyTorch's `mean` over all elements and `none` is PyTorch's `none`
    averaged over the last axis.
  * Probabilities are clipped to [1e-7, 1 - 1e-7] before their log (Keras);
    cases keep them inside that range, where PyTorch's formula is the same.
  * `activation: softmax|sigmoid` is the fused path: the model's output is the
    probabilities p = softmax(z) (or sigmoid(z)), and the expected gradient is
    PyTorch's gradient of the loss from the logits z with respect to z.
  * Class weights with reduction `weighted_mean` are PyTorch's `weight=`.
  * Sample weights: PyTorch's `none` reduction times the weights, then mean.
  * log-cosh has no PyTorch loss: it is `log(cosh(d))` written out in float64.
Inputs are deterministic (no RNG): logits[i] = sin(0.37 i + salt) * scale.
"""

import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
EPS = 1e-7


def wave(n, salt, scale):
    return torch.tensor(
        [math.sin(0.37 * i + salt) * scale for i in range(n)], dtype=torch.float64
    ).to(torch.float32)


def labels(batch, classes, salt):
    return [int((i * 7 + salt) % classes) for i in range(batch)]


def f32(v):
    """Nine significant digits: enough to round-trip any float32."""
    return float(f"{float(v):.9g}")


def flat(t):
    return [f32(v) for v in t.detach().reshape(-1).tolist()]


cases = []


def add(name, loss, batch, features, output, value, grad, **extra):
    case = {
        "name": name,
        "loss": loss,
        "batch": batch,
        "features": features,
        "output": flat(output),
        "value": f32(value.detach()),
        "grad": flat(grad),
        "from_logits": False,
        "label_smoothing": 0.0,
        "delta": 1.0,
        "reduction": "mean",
        "activation": None,
        "class_weights": None,
        "classes": None,
        "values": None,
        "sample_weights": None,
        "per_sample": None,
    }
    for k, v in extra.items():
        if k not in case:
            raise KeyError(k)
        case[k] = v
    cases.append(case)


def reduce(per_element, reduction, features_axis_mean=True, sample_weights=None):
    per_sample = per_element.mean(-1) if features_axis_mean else per_element.sum(-1)
    if sample_weights is not None:
        per_sample = per_sample * sample_weights
    if reduction == "mean":
        return per_sample.mean(), per_sample
    if reduction == "sum":
        return per_sample.sum(), per_sample
    if reduction == "none":
        return per_sample.sum(), per_sample
    raise ValueError(reduction)


# Regression.
for name, fn in [
    ("mean_squared_error", lambda o, t: F.mse_loss(o, t, reduction="none")),
    ("mean_absolute_error", lambda o, t: F.l1_loss(o, t, reduction="none")),
    ("huber", lambda o, t: F.huber_loss(o, t, reduction="none", delta=0.7)),
    (
        "log_cosh",
        lambda o, t: torch.log(torch.cosh((o - t).double())).float(),
    ),
]:
    for batch, features, reduction, weighted in [
        (4, 3, "mean", False),
        (5, 1, "sum", False),
        (4, 3, "none", False),
        (64, 10, "mean", True),
    ]:
        o = wave(batch * features, 1.0, 2.0).reshape(batch, features).requires_grad_()
        t = wave(batch * features, 2.5, 1.5).reshape(batch, features)
        sw = (wave(batch, 4.0, 0.4) + 1.0) if weighted else None
        value, per_sample = reduce(fn(o, t), reduction, sample_weights=sw)
        value.backward()
        if reduction == "none":
            value = per_sample.mean()
        add(
            f"{name}_{batch}x{features}_{reduction}{'_weighted' if weighted else ''}",
            name,
            batch,
            features,
            o,
            value,
            o.grad,
            delta=0.7 if name == "huber" else 1.0,
            reduction=reduction,
            values=flat(t),
            sample_weights=flat(sw) if weighted else None,
            per_sample=flat(per_sample),
        )


def softmax_targets(batch, classes, salt):
    return torch.softmax(wave(batch * classes, salt, 3.0).reshape(batch, classes), -1)


def one_hot(lab, classes):
    return F.one_hot(torch.tensor(lab), classes).to(torch.float32)


# Sparse categorical cross-entropy.
for batch, classes, scale, mode, smoothing, reduction, weighted in [
    (4, 3, 2.0, "logits", 0.0, "mean", False),
    (64, 10, 3.0, "logits", 0.0, "mean", False),
    (64, 10, 3.0, "softmax", 0.0, "mean", False),
    (6, 10, 3.0, "softmax", 0.1, "sum", False),
    (6, 10, 3.0, "logits", 0.2, "mean", False),
    (5, 3, 100.0, "logits", 0.0, "mean", False),
    (5, 3, 100.0, "softmax_grad_only", 0.0, "mean", False),
    (6, 10, 2.0, "probabilities", 0.0, "mean", False),
    (8, 3, 2.0, "logits", 0.0, "weighted_mean", True),
]:
    z = wave(batch * classes, 0.5, scale).reshape(batch, classes).requires_grad_()
    lab = labels(batch, classes, 3)
    y = torch.tensor(lab)
    cw = torch.tensor([0.5, 2.0, 1.25]) if weighted else None
    if mode == "probabilities":
        # Probabilities that did not come from the model's own softmax: the gradient
        # is with respect to them.
        p = torch.softmax(z.detach(), -1).requires_grad_()
        per = -(one_hot(lab, classes) * torch.log(p.clamp(EPS, 1 - EPS))).sum(-1)
        value = per.mean()
        value.backward()
        add(f"sparse_cce_probabilities_{batch}x{classes}", "sparse_categorical_crossentropy",
            batch, classes, p, value, p.grad, classes=lab, per_sample=flat(per))
        continue
    red = "mean" if reduction == "weighted_mean" else reduction
    value = F.cross_entropy(z, y, weight=cw, reduction=red, label_smoothing=smoothing)
    value.backward()
    output = z if mode == "logits" else torch.softmax(z.detach(), -1)
    add(
        f"sparse_cce_{mode}_{batch}x{classes}_scale{scale:g}_ls{smoothing:g}_{reduction}",
        "sparse_categorical_crossentropy",
        batch,
        classes,
        output,
        value,
        z.grad,
        from_logits=mode == "logits",
        activation="softmax" if mode.startswith("softmax") else None,
        label_smoothing=smoothing,
        reduction=reduction,
        classes=lab,
        class_weights=flat(cw) if weighted else None,
    )
    if mode == "softmax_grad_only":
        # p_y underflows to 0 in float32; kiln clips it to 1e-7 like Keras, so only
        # the gradient is compared.
        cases[-1]["value"] = None

# Categorical cross-entropy: one-hot and soft targets.
for batch, classes, scale, mode, smoothing, soft, weighted in [
    (4, 3, 2.0, "logits", 0.0, False, False),
    (64, 10, 3.0, "softmax", 0.0, False, False),
    (6, 10, 3.0, "logits", 0.0, True, False),
    (6, 10, 3.0, "softmax", 0.0, True, False),
    (6, 10, 3.0, "logits", 0.1, False, False),
    (5, 3, 100.0, "logits", 0.0, True, False),
    (6, 10, 2.0, "probabilities", 0.0, True, False),
    (6, 10, 2.0, "logits", 0.0, False, True),
]:
    z = wave(batch * classes, 0.5, scale).reshape(batch, classes).requires_grad_()
    lab = labels(batch, classes, 1)
    t = softmax_targets(batch, classes, 7.0) if soft else one_hot(lab, classes)
    sw = (wave(batch, 4.0, 0.4) + 1.0) if weighted else None
    if mode == "probabilities":
        p = torch.softmax(z.detach(), -1).requires_grad_()
        per = -(t * torch.log(p.clamp(EPS, 1 - EPS))).sum(-1)
        value = per.mean()
        value.backward()
        add(f"cce_probabilities_{batch}x{classes}", "categorical_crossentropy",
            batch, classes, p, value, p.grad, values=flat(t))
        continue
    per = F.cross_entropy(z, t, reduction="none", label_smoothing=smoothing)
    if sw is not None:
        per = per * sw
    value = per.mean()
    value.backward()
    output = z if mode == "logits" else torch.softmax(z.detach(), -1)
    add(
        f"cce_{mode}_{batch}x{classes}_scale{scale:g}_ls{smoothing:g}{'_soft' if soft else ''}{'_weighted' if weighted else ''}",
        "categorical_crossentropy",
        batch,
        classes,
        output,
        value,
        z.grad,
        from_logits=mode == "logits",
        activation="softmax" if mode == "softmax" else None,
        label_smoothing=smoothing,
        values=flat(t),
        sample_weights=flat(sw) if weighted else None,
    )

# Binary cross-entropy.
for batch, features, scale, mode, smoothing, reduction in [
    (8, 1, 2.0, "logits", 0.0, "mean"),
    (8, 1, 2.0, "sigmoid", 0.0, "mean"),
    (4, 3, 2.0, "logits", 0.0, "sum"),
    (4, 3, 100.0, "logits", 0.0, "mean"),
    (4, 3, 2.0, "probabilities", 0.0, "mean"),
    (4, 3, 2.0, "logits", 0.1, "mean"),
    (4, 3, 2.0, "sigmoid", 0.1, "none"),
]:
    z = wave(batch * features, 0.5, scale).reshape(batch, features).requires_grad_()
    t = (wave(batch * features, 2.0, 1.0) > 0).to(torch.float32).reshape(batch, features)
    ts = t * (1 - smoothing) + 0.5 * smoothing
    if mode == "probabilities":
        p = torch.sigmoid(z.detach()).requires_grad_()
        per_el = F.binary_cross_entropy(p, ts, reduction="none")
        value, per = reduce(per_el, reduction)
        value.backward()
        add(f"bce_probabilities_{batch}x{features}", "binary_crossentropy",
            batch, features, p, value, p.grad, values=flat(t), per_sample=flat(per))
        continue
    per_el = F.binary_cross_entropy_with_logits(z, ts, reduction="none")
    value, per = reduce(per_el, reduction)
    value.backward()
    if reduction == "none":
        value = per.mean()
    output = z if mode == "logits" else torch.sigmoid(z.detach())
    add(
        f"bce_{mode}_{batch}x{features}_scale{scale:g}_ls{smoothing:g}_{reduction}",
        "binary_crossentropy",
        batch,
        features,
        output,
        value,
        z.grad,
        from_logits=mode == "logits",
        activation="sigmoid" if mode == "sigmoid" else None,
        label_smoothing=smoothing,
        reduction=reduction,
        values=flat(t),
        classes=[int(v) for v in t.reshape(-1).tolist()] if features == 1 else None,
        per_sample=flat(per),
    )

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "pytorch_losses.json"), "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
print(f"{len(cases)} cases written with torch {torch.__version__}")
