"""The seed CNN in PyTorch, shared by the CPU and GPU peers of kiln's benchmarks."""

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
