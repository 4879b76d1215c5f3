"""Tiny networks registered exactly like the real ones, so the fast tests exercise the same paths
(in the manner of timm's `test_*` models and torchtitan's debug model). They run in milliseconds on CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from nnscale.zoo.registry import register_model

# What every registration here shares.
_TEST_NET = {"family": "test", "num_classes": 10, "source": "nnscale test model"}

class _Block(nn.Module):
    # A residual block: the skip path has no convolution, so depth counts 2 per block, not 3.
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(x + self.bn2(self.conv2(y)))


class TinyResNet(nn.Module):
    """stem conv 3->8 @3x3 stride 2, two residual blocks, global pool, linear 8->num_classes.

    5 convolutions, depth 5 (1 + 2 x 2), 1 linear layer.
    """

    def __init__(self, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.blocks = nn.Sequential(_Block(width), _Block(width))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.relu(self.bn(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


register_model(
    "test-tiny-resnet", keras_twin=True, **_TEST_NET, input_shape=(3, 32, 32),
    description="5 convs in 2 residual blocks; for fast tests")(TinyResNet)


class TinyMLP(nn.Module):
    """flatten 3x8x8 -> linear 192->32 -> ReLU -> linear 32->num_classes. No convolution at all."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


register_model(
    "test-tiny-mlp", keras_twin=True, **_TEST_NET, input_shape=(3, 8, 8),
    description="two linear layers; for fast tests")(TinyMLP)


class WideMLP(nn.Module):
    """flatten 1x32x32 -> linear 1024->1024, four blocks of linear 1024->1024 + ReLU, linear
    1024->num_classes: 5.26M parameters (21 MB in fp32) and little activation memory at small
    batches, so parameters, gradients and optimizer state dominate a training step's memory (what
    sharding divides: tests/distributed/test_fsdp.py)."""

    def __init__(self, num_classes: int = 10, width: int = 1024, depth: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Flatten(), nn.Linear(1024, width), nn.ReLU())
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.ReLU())
                                    for _ in range(depth))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


register_model(
    "test-wide-mlp", **_TEST_NET, input_shape=(1, 32, 32),
    description="5.26M parameters in wide linear layers; for sharding tests")(WideMLP)
