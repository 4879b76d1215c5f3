"""Paper-original networks that torchvision and timm do not ship, written from the papers.

* `alexnet-original`: the two-GPU AlexNet of 2012 (grouped convolutions, LRN, 227x227 input);
  torchvision's `alexnet` is the single-tower variant of Krizhevsky's 2014 "one weird trick" paper.
* `inception-v1-original`: GoogLeNet as in Table 1 of the paper (no batch norm, real 5x5
  branches, LRN in the stem); torchvision's `googlenet` adds batch norm and uses 3x3 for 5x5.
* `resnet50-v1`, `resnet152-v1`: ResNet as in the paper, with the stride of a downsampling
  bottleneck on its first 1x1 convolution; torchvision's ResNets are "v1.5" (stride on the 3x3).

Weights are random (initialised as the papers describe where that is cheap to do); every
constructor works under `with torch.device("meta"):`, so counting needs no memory.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from nnscale.zoo.registry import register_model

_SOURCE = "written from the paper"

_ALEXNET_PAPER = (
    "Krizhevsky, Sutskever and Hinton, 'ImageNet classification with deep convolutional neural "
    "networks', Advances in Neural Information Processing Systems 25 (NIPS 2012), pp. 1097-1105"
)
_INCEPTION_PAPER = (
    "Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke and Rabinovich, 'Going deeper "
    "with convolutions', CVPR 2015, pp. 1-9 (arXiv:1409.4842)"
)
_RESNET_PAPER = (
    "He, Zhang, Ren and Sun, 'Deep residual learning for image recognition', CVPR 2016, "
    "pp. 770-778 (arXiv:1512.03385)"
)


# --------------------------------------------------------------------------------------------
# AlexNet (Krizhevsky et al. 2012), Section 3.5 and Figure 2.
#
# The paper's LRN is b = a / (k + alpha * sum a^2)^beta with n=5, k=2, alpha=1e-4, beta=0.75.
# PyTorch's LocalResponseNorm (like Caffe) divides alpha by the window size n; the Caffe
# reference model keeps alpha=1e-4 under that convention. We follow the Caffe reference
# (alpha=1e-4 in PyTorch's convention); the speed is the same either way.
#
# Conv layers "split across two GPUs" are grouped convolutions (groups=2): conv2, conv4, conv5.
# conv1 sees the whole input on both GPUs (= groups 1); conv3 connects across GPUs (groups 1).
#
# Parameters (weights + biases):                       MACs at 227x227 (out H*W * weights):
#   conv1  96*3*11*11       +  96 =     34,944        55*55 *     34,848 = 105,415,200
#   conv2 256*48*5*5        + 256 =    307,456        27*27 *    307,200 = 223,948,800
#   conv3 384*256*3*3       + 384 =    885,120        13*13 *    884,736 = 149,520,384
#   conv4 384*192*3*3       + 384 =    663,936        13*13 *    663,552 = 112,140,288
#   conv5 256*192*3*3       + 256 =    442,624        13*13 *    442,368 =  74,760,192
#   fc6   9216*4096        + 4096 = 37,752,832                            37,748,736
#   fc7   4096*4096        + 4096 = 16,781,312                            16,777,216
#   fc8   4096*1000        + 1000 =  4,097,000                             4,096,000
#   total                          60,965,224                            724,406,816
# (conv1: (227 - 11) / 4 + 1 = 55; the 3/2 max pools take 55 -> 27 -> 13 -> 6.)
# --------------------------------------------------------------------------------------------


def _lrn_alexnet() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


class AlexNetOriginal(nn.Module):
    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4),  # conv1
            nn.ReLU(inplace=True),
            _lrn_alexnet(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=2),  # conv2
            nn.ReLU(inplace=True),
            _lrn_alexnet(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1),  # conv3
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1, groups=2),  # conv4
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1, groups=2),  # conv5
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(256 * 6 * 6, 4096),  # fc6
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),  # fc7
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),  # fc8
        )
        # Section 5: weights from N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden
        # fully connected layers, 0 elsewhere.
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        fcs = [m for m in self.classifier if isinstance(m, nn.Linear)]
        for i, m in enumerate(convs + fcs):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.constant_(m.bias, 1.0 if i in (1, 3, 4, 5, 6) else 0.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model(
    "alexnet-original", keras_twin=True, family="paper", input_shape=(3, 227, 227), source=_SOURCE,
    paper=_ALEXNET_PAPER,
    description="two-tower AlexNet: grouped conv2/4/5, LRN, 227x227 input; 61.0M params")
def alexnet_original(**overrides) -> nn.Module:
    return AlexNetOriginal(**overrides)


# --------------------------------------------------------------------------------------------
# GoogLeNet / Inception v1 (Szegedy et al. 2015), Table 1 and Section 5.
#
# Stem: conv 7x7/2 (64) -> max pool 3/2 -> LRN -> conv 1x1 (64) -> conv 3x3 (192) -> LRN ->
# max pool 3/2. Pools round up as in the Caffe reference (ceil_mode): 112 -> 56 -> 28, and the
# pools after 3b and 4e take 28 -> 14 -> 7. The LRN settings (size 5, alpha 1e-4, beta 0.75,
# k 1) are the Caffe reference's; the paper does not list them.
# Each inception module has six convolutions, each followed by ReLU, so 3 + 9*6 = 57 convs.
# Table 1's params column sums to 6.8M (its per-row figures are approximate: conv1's 7*7*3*64 =
# 9,408 weights are listed as 2.7K); the weights here are 6,990,272, with biases 6,998,552
# (7.0M). MACs at 224x224: 1,581,647,872 in the 57 convolutions + 1,024,000 in the fc =
# 1,582,671,872 (the paper: "1.5 billion multiply-adds").
# Each aux head adds (128*C + 128) + (2048*1024 + 1024) + (1024*1000 + 1000) parameters,
# C = 512 on 4a and 528 on 4d: 3,188,840 + 3,190,888 = 6,379,728.
# --------------------------------------------------------------------------------------------

# (in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj) per module, from Table 1.
_INCEPTION_CFG: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


def _conv_relu(
    cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0
) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.ReLU(inplace=True))


def _lrn_googlenet() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0)


class Inception(nn.Module):
    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int) -> None:
        super().__init__()
        self.branch1 = _conv_relu(cin, c1, 1)
        self.branch2 = nn.Sequential(_conv_relu(cin, c3r, 1), _conv_relu(c3r, c3, 3, padding=1))
        self.branch3 = nn.Sequential(_conv_relu(cin, c5r, 1), _conv_relu(c5r, c5, 5, padding=2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), _conv_relu(cin, cp, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Section 5: avg pool 5x5/3 (14 -> 4), 1x1 conv 128, fc 1024, dropout 0.7, fc classes."""

    def __init__(self, cin: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, 3)
        self.conv = _conv_relu(cin, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


class InceptionV1Outputs(NamedTuple):
    logits: Tensor
    aux1: Tensor  # head on 4a
    aux2: Tensor  # head on 4d


class InceptionV1Original(nn.Module):
    def __init__(
        self, num_classes: int = 1000, aux_logits: bool = False, dropout: float = 0.4
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            _conv_relu(3, 64, 7, stride=2, padding=3),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            _lrn_googlenet(),
            _conv_relu(64, 64, 1),
            _conv_relu(64, 192, 3, padding=1),
            _lrn_googlenet(),
            nn.MaxPool2d(3, 2, ceil_mode=True),
        )
        for name, cfg in _INCEPTION_CFG.items():
            setattr(self, f"inception{name}", Inception(*cfg))
        self.pool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.pool4 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.aux1 = InceptionAux(512, num_classes) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # 7x7 at 224x224
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        # The Caffe reference initialises with Xavier; biases as constants.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.constant_(m.bias, 0.2 if isinstance(m, nn.Conv2d) else 0.0)

    def forward(self, x: Tensor) -> Tensor | InceptionV1Outputs:
        x = self.stem(x)
        x = self.pool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.pool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        if aux1 is not None and aux2 is not None:
            return InceptionV1Outputs(x, aux1, aux2)
        return x


@register_model(
    "inception-v1-original", keras_twin=True, family="paper", input_shape=(3, 224, 224), source=_SOURCE,
    paper=_INCEPTION_PAPER,
    description="GoogLeNet as in Table 1: no batch norm, 5x5 branches, LRN; aux heads off "
    "(aux_logits=True adds them, used in training only); 7.0M params")
def inception_v1_original(**overrides) -> nn.Module:
    return InceptionV1Original(**overrides)


# ResNet v1 (He et al. 2016): torchvision's Bottleneck with the stride moved, in resnet_v1.py, which
# imports torchvision; only building the model does (registering it here must not: every nnscale
# command and worker looks models up, and importing torchvision costs ~3 s on the 2-core VM).


# Both depths share everything but the blocks per stage (Table 1: 3-4-6-3 and 3-8-36-3).
_RESNET_V1 = {"family": "paper", "keras_twin": True, "input_shape": (3, 224, 224), "paper": _RESNET_PAPER,
              "source": _SOURCE + " (torchvision's ResNet with the stride moved to the first 1x1 conv)"}
_V1_TEXT = "original ResNet-{}: stride 2 on the first 1x1 of a downsampling bottleneck; {}"


@register_model("resnet50-v1", **_RESNET_V1,
                description=_V1_TEXT.format(50, "25.6M params, 3.86G MACs (torchvision's v1.5: 4.09G)"))
def resnet50_v1(**overrides) -> nn.Module:
    from nnscale.zoo.resnet_v1 import resnet_v1

    return resnet_v1([3, 4, 6, 3], **overrides)


@register_model("resnet152-v1", **_RESNET_V1, description=_V1_TEXT.format(152, "60.2M params"))
def resnet152_v1(**overrides) -> nn.Module:
    from nnscale.zoo.resnet_v1 import resnet_v1

    return resnet_v1([3, 8, 36, 3], **overrides)
