"""Bottleneck ResNets in Keras 3: torchvision's v1.5 (`resnet50`, `resnet152`) and the paper's v1
(`resnet50-v1`, `resnet152-v1`).

Torch definitions: torchvision.models.resnet (ResNet, Bottleneck) and
nnscale.zoo.resnet_v1.BottleneckV1 (He, Zhang, Ren and Sun, "Deep residual learning for image
recognition", CVPR 2016, Table 1 and Section 3.3). The only difference is where a downsampling
bottleneck strides: v1 (the paper, the authors' Caffe models) on its first 1x1 convolution, v1.5
(torchvision) on its 3x3. Everything else is common: the 7x7/2 stem and 3x3/2 max pool, batch norm
after every convolution, projection shortcuts (1x1 conv + BN, "option B") where the shape changes,
global average pooling and one fully connected layer.

Layer names are the torch modules' names (`layer2.0.conv1`, `layer2.0.downsample.0`, ...). Shapes
in the comments are (H, W, C) at the default 224x224 input.
"""

from __future__ import annotations

from functools import partial

import keras

from nnscale.kerasnets.layers import (
    TorchInit, batch_norm, conv2d, dense, initializers, max_pool2d, relu,
)
from nnscale.kerasnets.registry import register_keras_model

_EXPANSION = 4  # a bottleneck's output has 4x the channels of its 1x1 and 3x3 convolutions


def _he_fan_out() -> dict:
    # torchvision's ResNet: kaiming_normal_(mode="fan_out", nonlinearity="relu"), i.e.
    # N(0, 2 / fan_out) with fan_out = out * kh * kw, which is Keras's fan_out of the kernel too.
    return initializers(TorchInit("kaiming_normal_fan_out"))


def _conv_bn(x, filters: int, kernel: int, name: str, bn_name: str, stride: int = 1):
    # 3x3 convolutions pad 1 (torchvision's conv3x3), 1x1 convolutions pad 0; none has a bias.
    x = conv2d(x, filters, kernel, stride=stride, padding=kernel // 2, use_bias=False,
               init=_he_fan_out(), name=name)
    return batch_norm(x, name=bn_name)


def _bottleneck(x, planes: int, stride: int, name: str, stride_on_1x1: bool):
    """1x1 (planes) -> 3x3 (planes) -> 1x1 (4 planes), each with BN, ReLU after the sum."""
    stride1, stride3 = (stride, 1) if stride_on_1x1 else (1, stride)
    y = relu(_conv_bn(x, planes, 1, f"{name}.conv1", f"{name}.bn1", stride1), name=f"{name}.relu1")
    y = relu(_conv_bn(y, planes, 3, f"{name}.conv2", f"{name}.bn2", stride3), name=f"{name}.relu2")
    y = _conv_bn(y, planes * _EXPANSION, 1, f"{name}.conv3", f"{name}.bn3")
    shortcut = x
    if stride != 1 or int(x.shape[-1]) != planes * _EXPANSION:
        # torchvision's downsample = Sequential(conv1x1(in, 4 planes, stride), BatchNorm2d).
        shortcut = _conv_bn(x, planes * _EXPANSION, 1, f"{name}.downsample.0",
                            f"{name}.downsample.1", stride)
    return relu(keras.layers.Add(name=f"{name}.add")([y, shortcut]), name=f"{name}.relu3")


def _resnet(x, num_classes: int, blocks: tuple[int, int, int, int], stride_on_1x1: bool):
    # Stem: 7x7/2 padding 3 (SAME would pad 2 before, 3 after: explicit pad) -> 112x112x64;
    # max pool 3x3/2 padding 1 (SAME would pad 0 before, 1 after: -inf pad) -> 56x56x64.
    x = conv2d(x, 64, 7, stride=2, padding=3, use_bias=False, init=_he_fan_out(), name="conv1")
    x = relu(batch_norm(x, name="bn1"), name="relu")
    x = max_pool2d(x, 3, 2, padding=1, name="maxpool")
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True), start=1):
        for i in range(count):
            stride = 2 if i == 0 and stage > 1 else 1  # layer2..4 halve the size: 28, 14, 7
            x = _bottleneck(x, planes, stride, f"layer{stage}.{i}", stride_on_1x1)
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)  # AdaptiveAvgPool2d(1) + flatten
    return dense(x, num_classes, name="fc")  # PyTorch's default Linear init, as torchvision


# One registration a depth and variant; the builder is `_resnet` with the depth's blocks per stage
# (Table 1 of the paper: 3-4-6-3 for 50 layers, 3-8-36-3 for 152).
_V15 = "torchvision's ResNet-{} (v1.5: stride on the 3x3); {} params"
_V1 = "original ResNet-{}: stride 2 on the first 1x1 of a downsampling bottleneck"
_IMAGENET = {"input_shape": (224, 224, 3), "num_classes": 1000}
resnet50 = register_keras_model("resnet50", **_IMAGENET, description=_V15.format(50, "25.6M"))(
    partial(_resnet, blocks=(3, 4, 6, 3), stride_on_1x1=False))
resnet152 = register_keras_model("resnet152", **_IMAGENET, description=_V15.format(152, "60.2M"))(
    partial(_resnet, blocks=(3, 8, 36, 3), stride_on_1x1=False))
resnet50_v1 = register_keras_model("resnet50-v1", **_IMAGENET, description=_V1.format(50))(
    partial(_resnet, blocks=(3, 4, 6, 3), stride_on_1x1=True))
resnet152_v1 = register_keras_model("resnet152-v1", **_IMAGENET, description=_V1.format(152))(
    partial(_resnet, blocks=(3, 8, 36, 3), stride_on_1x1=True))
