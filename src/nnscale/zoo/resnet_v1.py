"""ResNet v1 (He et al. 2016) as the paper and the authors' Caffe models have it: torchvision's
ResNet with a downsampling bottleneck's stride on its first 1x1 convolution (registered in
paper_models.py as resnet50-v1 and resnet152-v1; imported only to build one)."""

from __future__ import annotations

from typing import Any

from torchvision.models.resnet import Bottleneck, ResNet, conv1x1

# --------------------------------------------------------------------------------------------
# ResNet v1 (He et al. 2016), Table 1 and Section 3.3.
#
# "When the shortcuts go across feature maps of two sizes, they are performed with a stride of
# 2" and the bottleneck's first layer is the 1x1 (Fig. 5), so in the original (as in the
# authors' Caffe models) a downsampling bottleneck strides on its first 1x1 convolution.
# torchvision's "v1.5" moves that stride to the 3x3 (more accurate, since a strided 1x1 skips
# 3/4 of its input), which costs more: the first 1x1 then runs at the input's full resolution.
# Everything else (projection shortcuts "option B", batch norm after every convolution, the
# stem, the layer counts) is identical, so we subclass torchvision's Bottleneck and only move
# the stride: the parameter counts stay exactly torchvision's (25,557,032 and 60,192,808) and
# there is no second copy of the ResNet code to keep in step.
#
# Convolutions: stem 1 + 3 per bottleneck + 4 projection shortcuts (one per stage):
#   resnet50  [3, 4, 6, 3]  -> 1 + 16*3 + 4 = 53;   resnet152 [3, 8, 36, 3] -> 1 + 50*3 + 4 = 155.
# MACs at 224: in the three downsampling blocks (layer2..4, block 0) v1's first 1x1 conv has
# 1/4 of v1.5's output positions; each such conv costs 56*56*256*128 = 28*28*512*256 =
# 14*14*1024*512 = 102,760,448 MACs in v1.5, so v1 saves 3 * 3/4 * 102,760,448 = 231,211,008:
# resnet50 4,089,184,256 (v1.5) -> 3,857,973,248 (v1); resnet152 11,513,626,624 -> 11,282,415,616.
# --------------------------------------------------------------------------------------------


class BottleneckV1(Bottleneck):
    """torchvision's Bottleneck with the stride on conv1 (1x1) instead of conv2 (3x3)."""

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(inplanes, planes, 1, *args, **kwargs)
        self.conv1 = conv1x1(inplanes, self.conv1.out_channels, stride)
        self.stride = stride


def resnet_v1(layers: list[int], **overrides) -> ResNet:
    # ResNet.__init__ initialises after building the blocks (He init for the convolutions, the
    # paper's ref. [13]), so the replaced conv1 gets the same init as the others.
    return ResNet(BottleneckV1, layers, **overrides)


