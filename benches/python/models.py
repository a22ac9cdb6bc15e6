"""The models of kiln's benchmarks in PyTorch and their timed workloads, shared by the
CPU and GPU peers."""

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


class SmallResNet(nn.Module):
    """kiln's `SmallResNet` (benches/src/lib.rs): a stem, a residual block with an
    identity shortcut, one that halves the image with a 1x1 projection shortcut, global
    average pooling, Dense(10); softmax is folded into the loss.

    Padding follows Keras's `same` in shape. For the stride-2 3x3 convolution on 32x32
    Keras pads 0 above and left and 1 below and right; `padding=1` pads one more row
    and column above and left, which gives the same 16x16 output for the same work
    without the copy that an explicit `F.pad` would add to PyTorch's time."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, padding=1)
        self.res1_a = nn.Conv2d(32, 32, 3, padding=1)
        self.res1_b = nn.Conv2d(32, 32, 3, padding=1)
        self.res2_a = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.res2_b = nn.Conv2d(64, 64, 3, padding=1)
        self.res2_shortcut = nn.Conv2d(32, 64, 1, stride=2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.out = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        branch = self.res1_b(torch.relu(self.res1_a(x)))
        x = torch.relu(torch.add(branch, x))
        branch = self.res2_b(torch.relu(self.res2_a(x)))
        x = torch.relu(torch.add(branch, self.res2_shortcut(x)))
        return self.out(torch.flatten(self.gap(x), 1))


def small_resnet():
    return SmallResNet()


def conv_bn(c_in, c_out):
    """A same-padded 3x3 convolution, batch normalisation with Keras's epsilon and
    momentum, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1),
                         nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01), nn.ReLU())


class Residual(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.branch = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x):
        return x + self.branch(x)


def resnet9():
    """kiln's `ResNet9` (benches/src/lib.rs), the network of examples/cifar10_resnet.rs
    at width 16; softmax is folded into the loss."""
    return nn.Sequential(
        conv_bn(3, 16),
        conv_bn(16, 32), nn.MaxPool2d(2), Residual(32),
        conv_bn(32, 64), nn.MaxPool2d(2),
        conv_bn(64, 128), nn.MaxPool2d(2), Residual(128),
        nn.MaxPool2d(4), nn.Flatten(), nn.Linear(128, 10),
    )


# The models by the name kiln's benchmark groups give them.
MODELS = {"seed_cnn": seed_cnn, "small_resnet": small_resnet, "resnet9": resnet9}


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
