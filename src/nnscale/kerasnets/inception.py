"""GoogLeNet twice in Keras 3: torchvision's `googlenet` and the paper's `inception-v1-original`.

Torch definitions: torchvision.models.googlenet as the zoo builds it (aux heads off,
transform_input=False, init_weights=True) and nnscale.zoo.paper_models.InceptionV1Original
(Szegedy et al., "Going deeper with convolutions", CVPR 2015, Table 1). The two differ in:
  * torchvision's BasicConv2d is conv (no bias) + BatchNorm2d(eps=0.001) + ReLU; the paper has
    conv (bias) + ReLU and no batch norm;
  * torchvision's "5x5" branch is a 3x3 convolution (a known bug kept for its pretrained weights,
    pytorch/vision#906); the paper's is a real 5x5;
  * the paper has LRN in the stem (after the first pool and after conv 3x3); torchvision has none;
  * the pool before inception 5a is 2x2/2 in torchvision and 3x3/2 in the paper (both 14 -> 7);
  * dropout before the classifier is 0.2 in torchvision and 0.4 in the paper.
The auxiliary heads are left out: the zoo builds both without them (they only run in training).
transform_input is False in the zoo (random weights have no ImageNet normalisation to undo), so
there is no input transform here either.

All max pools use ceil_mode, as in the Caffe reference: 112 -> 56 -> 28, 28 -> 14, 14 -> 7. Layer
names are the torch modules' names. Shapes in the comments are (H, W, C).
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from nnscale.kerasnets.layers import (
    LocalResponseNorm, TorchInit, batch_norm, conv2d, dense, initializers, max_pool2d, relu,
)
from nnscale.kerasnets.registry import register_keras_model

# (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj) per module, Table 1 of the paper; the
# input channels follow from the previous module.
_INCEPTION_CFG: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}

# conv_block(x, filters, kernel, name, stride=1, padding=0) -> x
ConvBlock = Callable[..., object]


def _basic_conv(x, filters: int, kernel: int, name: str, stride: int = 1, padding: int = 0):
    """torchvision's BasicConv2d: conv without bias, BatchNorm2d(eps=0.001), ReLU.

    Weights from torchvision's init: trunc_normal_(std=0.01, a=-2, b=2); the cut is at +-2 in
    absolute value, i.e. 200 standard deviations, so it is a plain N(0, 0.01) (Keras's
    TruncatedNormal would cut at 2 standard deviations instead).
    """
    weights = initializers(TorchInit("normal", 0.01))
    x = conv2d(x, filters, kernel, stride=stride, padding=padding, use_bias=False, init=weights,
               name=f"{name}.conv")
    return relu(batch_norm(x, eps=0.001, name=f"{name}.bn"), name=f"{name}.relu")


def _conv_relu(x, filters: int, kernel: int, name: str, stride: int = 1, padding: int = 0):
    """The paper's convolution + ReLU. Xavier-uniform weights and bias 0.2, as the zoo's model
    (after the Caffe reference)."""
    weights = initializers(TorchInit("xavier_uniform"), TorchInit("constant", 0.2))
    x = conv2d(x, filters, kernel, stride=stride, padding=padding, init=weights, name=f"{name}.0")
    return relu(x, name=f"{name}.1")


def _inception(x, cfg, name: str, conv_block: ConvBlock, kernel5: int):
    """One inception module: four branches concatenated along the channels.

    The names are the torch modules' up to the conv block, which adds the rest: ".conv"/".bn" for
    torchvision's BasicConv2d, ".0" for the conv in the zoo's conv+ReLU Sequential.
    """
    c1, c3r, c3, c5r, c5, cp = cfg
    b1 = conv_block(x, c1, 1, f"{name}.branch1")
    b2 = conv_block(x, c3r, 1, f"{name}.branch2.0")
    b2 = conv_block(b2, c3, 3, f"{name}.branch2.1", padding=1)
    b3 = conv_block(x, c5r, 1, f"{name}.branch3.0")
    b3 = conv_block(b3, c5, kernel5, f"{name}.branch3.1", padding=kernel5 // 2)
    # 3x3/1 padding 1 ceil_mode: the output size is the input's and SAME pads 1 and 1, so this is
    # Keras's native "same" max pool.
    b4 = max_pool2d(x, 3, 1, padding=1, ceil_mode=True, name=f"{name}.branch4.0")
    b4 = conv_block(b4, cp, 1, f"{name}.branch4.1")
    return keras.layers.Concatenate(axis=-1, name=f"{name}.concat")([b1, b2, b3, b4])


def _inception_stack(x, conv_block: ConvBlock, kernel5: int, pool4: int, torch_names: bool):
    """inception 3a..5b with the pools between them: 28x28x192 -> 7x7x1024.

    `torch_names` names the pools as torchvision does (maxpool3, maxpool4), else as the zoo's
    paper model (pool3, pool4).
    """
    for key in ("3a", "3b"):
        x = _inception(x, _INCEPTION_CFG[key], f"inception{key}", conv_block, kernel5)
    x = max_pool2d(x, 3, 2, ceil_mode=True, name="maxpool3" if torch_names else "pool3")  # 14x14
    for key in ("4a", "4b", "4c", "4d", "4e"):
        x = _inception(x, _INCEPTION_CFG[key], f"inception{key}", conv_block, kernel5)
    x = max_pool2d(x, pool4, 2, ceil_mode=True, name="maxpool4" if torch_names else "pool4")  # 7x7
    for key in ("5a", "5b"):
        x = _inception(x, _INCEPTION_CFG[key], f"inception{key}", conv_block, kernel5)
    return x  # 7x7x1024


def _head(x, num_classes: int, dropout: float, init: dict | None):
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)  # AdaptiveAvgPool2d(1) + flatten
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    return dense(x, num_classes, init=init, name="fc")


@register_keras_model(
    "googlenet", input_shape=(224, 224, 3), num_classes=1000,
    description="torchvision's GoogLeNet: batch norm, 3x3 for 5x5, no aux heads; 6.6M params")
def googlenet(x, num_classes: int, dropout: float = 0.2):
    # conv1 7x7/2 padding 3 on 224: SAME would pad 2 before and 3 after, so it is padded explicitly.
    x = _basic_conv(x, 64, 7, "conv1", stride=2, padding=3)  # 112x112x64
    x = max_pool2d(x, 3, 2, ceil_mode=True, name="maxpool1")  # 56x56x64
    x = _basic_conv(x, 64, 1, "conv2")
    x = _basic_conv(x, 192, 3, "conv3", padding=1)
    x = max_pool2d(x, 3, 2, ceil_mode=True, name="maxpool2")  # 28x28x192
    x = _inception_stack(x, _basic_conv, kernel5=3, pool4=2, torch_names=True)
    # torchvision leaves the fc bias at PyTorch's default U(-1/sqrt(1024), +1/sqrt(1024)).
    fc_init = initializers(TorchInit("normal", 0.01), TorchInit("uniform", 1 / 32))
    return _head(x, num_classes, dropout, fc_init)


def _lrn(x, name: str):
    # The Caffe reference's settings (size 5, alpha 1e-4, beta 0.75, k 1); the paper lists none.
    return LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0, name=name)(x)


@register_keras_model(
    "inception-v1-original", input_shape=(224, 224, 3), num_classes=1000,
    description="GoogLeNet as in Table 1: no batch norm, 5x5 branches, LRN; no aux heads; "
    "7.0M params")
def inception_v1_original(x, num_classes: int, dropout: float = 0.4):
    x = _conv_relu(x, 64, 7, "stem.0", stride=2, padding=3)  # 112x112x64
    x = max_pool2d(x, 3, 2, ceil_mode=True, name="stem.1")  # 56x56x64
    x = _lrn(x, "stem.2")
    x = _conv_relu(x, 64, 1, "stem.3")
    x = _conv_relu(x, 192, 3, "stem.4", padding=1)
    x = _lrn(x, "stem.5")
    x = max_pool2d(x, 3, 2, ceil_mode=True, name="stem.6")  # 28x28x192
    x = _inception_stack(x, _conv_relu, kernel5=5, pool4=3, torch_names=False)
    fc_init = initializers(TorchInit("xavier_uniform"), TorchInit("constant", 0.0))
    return _head(x, num_classes, dropout, fc_init)
