"""The four small networks shown on the seed talk's framework slides, exactly as the slides define them.

Source: Dorobisz, Pietroń, Wielgosz, Karwatowski, Wiatr, "Scalability analysis of neural networks on
multiple GPGPUs", AGH Kraków, 2019 (../shared/seed/). Each is the PyTorch equivalent of the slide's
definition; comments give the slide's lines and the resulting shapes so a reader can check them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnscale.zoo.registry import register_model

_SEED = (
    "Dorobisz et al., 'Scalability analysis of neural networks on multiple GPGPUs', AGH, 2019 "
    "(framework slide)"
)
_SEED_NET = {"family": "seed", "paper": _SEED}  # what every registration here shares


@register_model(
    "caffe-conv", keras_twin=True, **_SEED_NET, input_shape=(1, 100, 100), num_classes=3,
    source="Caffe conv.prototxt on the seed's Caffe slide",
    description="one convolution: 1x1x100x100 input, 3 filters 5x5, stride 1 -> 3x96x96")
def caffe_conv(num_classes: int = 3) -> nn.Module:
    # convolution_param { num_output: 3 kernel_size: 5 stride: 1 }, no padding: 100 - 5 + 1 = 96.
    # The Gaussian(std 0.01) weight filler and zero bias are the slide's; kept for faithfulness.
    conv = nn.Conv2d(1, num_classes, kernel_size=5, stride=1)
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.zeros_(conv.bias)
    return _named(conv=conv)


def _named(**layers: nn.Module) -> nn.Sequential:
    from collections import OrderedDict

    return nn.Sequential(OrderedDict(layers))


class TFMnistConvNet(nn.Module):
    """The TensorFlow `conv_net` of the seed (tf.layers API), input reshaped to 28x28x1.

    conv2d(32, 5, relu) 'valid' -> 24x24x32; max_pool 2/2 -> 12x12; conv2d(64, 3, relu) -> 10x10x64;
    max_pool 2/2 -> 5x5x64; flatten 1600; dense(1024) with NO activation (the slide passes none);
    dropout; dense(n_classes).
    """

    def __init__(self, num_classes: int = 10, dropout: float = 0.25) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(5 * 5 * 64, 1024)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        x = torch.flatten(x, 1)
        return self.out(self.dropout(self.fc1(x)))


register_model(
    "tf-mnist-convnet", keras_twin=True, **_SEED_NET, input_shape=(1, 28, 28), num_classes=10,
    source="TensorFlow conv_net on the seed's TensorFlow slide",
    description="conv 32@5x5, pool, conv 64@3x3, pool, dense 1024, dense 10")(TFMnistConvNet)


class MatConvNetLeNet(nn.Module):
    """The MatConvNet `net.layers` list of the seed (LeNet on MNIST), every layer a convolution.

    conv 5x5x1x20 -> 24x24x20; pool max 2 stride 2 -> 12; conv 5x5x20x50 -> 8x8x50; pool -> 4x4x50;
    conv 4x4x50x500 -> 1x1x500; relu; conv 1x1x500x10 -> 1x1x10; softmaxloss (the loss: left to the
    training step, so forward returns the 10 scores, flattened).
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.conv3 = nn.Conv2d(50, 500, 4)
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(500, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool2(self.conv2(self.pool1(self.conv1(x))))
        return torch.flatten(self.conv4(self.relu3(self.conv3(x))), 1)


register_model(
    "matconvnet-lenet", keras_twin=True, **_SEED_NET, input_shape=(1, 28, 28), num_classes=10,
    source="MatConvNet net.layers on the seed's MatConvNet slide",
    description="LeNet as four convolutions (the last two act as fully connected layers)",
)(MatConvNetLeNet)


class PyTorchMnistNet(nn.Module):
    """The PyTorch `Net` of the seed (the pytorch/examples MNIST net of 2019), verbatim."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5, 1)
        self.conv2 = nn.Conv2d(20, 50, 5, 1)
        self.fc1 = nn.Linear(4 * 4 * 50, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        x = x.view(-1, 4 * 4 * 50)
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)


register_model(
    "pytorch-mnist-net", keras_twin=True, **_SEED_NET, input_shape=(1, 28, 28), num_classes=10,
    source="PyTorch Net on the seed's PyTorch slide",
    description="conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc 10, log_softmax")(PyTorchMnistNet)
