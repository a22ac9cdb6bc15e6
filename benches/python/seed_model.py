"""The seed CNN in PyTorch and its timed workloads, shared by the CPU and GPU peers of
kiln's benchmarks."""

import torch
from torch import nn


def seed_cnn():
    """Keras's Conv2D(32/64/128, 3, relu) + MaxPool(2) blocks, Flatten, Dense(128, relu),
    Dense(10); softmax is folded into the loss."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def workloads(model, x, y, read_loss):
    """The workloads both peers time on `model` with inputs `x` and labels `y`, by name:
    the training step (cross-entropy, backward, Adam with Keras's defaults; with
    `read_loss`, the loss read back every step, as a training loop does on a GPU), the
    forward and backward pass alone, and inference."""
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)

    def train_step():
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if read_loss:
            loss.item()

    def forward_backward():
        model.zero_grad(set_to_none=False)
        loss_fn(model(x), y).backward()

    def inference():
        with torch.no_grad():
            model(x)

    return [("train_step", train_step), ("forward_backward", forward_backward),
            ("inference", inference)]
