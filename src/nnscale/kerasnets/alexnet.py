"""AlexNet twice in Keras 3: torchvision's single-tower `alexnet` and the 2012 `alexnet-original`.

Torch definitions: torchvision.models.alexnet (Krizhevsky, "One weird trick for parallelizing
convolutional neural networks", arXiv:1404.5997, 2014) and nnscale.zoo.paper_models.AlexNetOriginal
(Krizhevsky, Sutskever and Hinton, "ImageNet classification with deep convolutional neural
networks", NIPS 2012). Layer names are the torch modules' names (`features.0`, `classifier.1`, ...).
Shapes in the comments are (H, W, C).
"""

from __future__ import annotations

import keras

from nnscale.kerasnets.layers import (
    LocalResponseNorm, TorchInit, conv2d, dense, initializers, max_pool2d, relu,
)
from nnscale.kerasnets.registry import register_keras_model


@register_keras_model(
    "alexnet", input_shape=(224, 224, 3), num_classes=1000,
    description="torchvision's AlexNet (single tower, 64/192/384/256/256 filters); 61.1M params")
def alexnet(x, num_classes: int, dropout: float = 0.5):
    # conv1 11x11/4 padding 2: (224 + 4 - 11) // 4 + 1 = 55; SAME would give 56, so explicit pad.
    x = relu(conv2d(x, 64, 11, stride=4, padding=2, name="features.0"), name="features.1")
    x = max_pool2d(x, 3, 2, name="features.2")  # 27x27x64
    x = relu(conv2d(x, 192, 5, padding=2, name="features.3"), name="features.4")
    x = max_pool2d(x, 3, 2, name="features.5")  # 13x13x192
    x = relu(conv2d(x, 384, 3, padding=1, name="features.6"), name="features.7")
    x = relu(conv2d(x, 256, 3, padding=1, name="features.8"), name="features.9")
    x = relu(conv2d(x, 256, 3, padding=1, name="features.10"), name="features.11")
    x = max_pool2d(x, 3, 2, name="features.12")  # 6x6x256
    # torchvision's AdaptiveAvgPool2d((6, 6)) maps a 6x6 map to itself, which it is at the default
    # 224x224 input (and at every input from 223 to 254), so it is left out; the model's input
    # shape is fixed, and the check below keeps that assumption honest.
    if tuple(x.shape[1:3]) != (6, 6):
        raise ValueError(f"alexnet expects a 6x6 feature map before the classifier, got {x.shape}")
    x = keras.layers.Flatten(name="flatten")(x)  # 9216, in (H, W, C) order
    x = keras.layers.Dropout(dropout, name="classifier.0")(x)
    x = relu(dense(x, 4096, name="classifier.1"), name="classifier.2")
    x = keras.layers.Dropout(dropout, name="classifier.3")(x)
    x = relu(dense(x, 4096, name="classifier.4"), name="classifier.5")
    return dense(x, num_classes, name="classifier.6")


def _lrn(x, name: str):
    # Section 3.3: n = 5, k = 2, alpha = 1e-4, beta = 0.75; alpha in PyTorch's (and the Caffe
    # reference model's) convention, divided by n, as the zoo's AlexNetOriginal has it.
    return LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0, name=name)(x)


def _paper_init(bias: float) -> dict:
    # Section 5: weights from N(0, 0.01); biases 1 in conv2, conv4, conv5 and fc6, fc7, else 0.
    return initializers(TorchInit("normal", 0.01), TorchInit("constant", bias))


@register_keras_model(
    "alexnet-original", input_shape=(227, 227, 3), num_classes=1000,
    description="two-tower AlexNet: grouped conv2/4/5, LRN, 227x227 input; 61.0M params")
def alexnet_original(x, num_classes: int, dropout: float = 0.5):
    # The layers "split across two GPUs" (Section 3.2, Figure 2) are grouped convolutions
    # (groups=2): conv2, conv4, conv5. Keras's Conv2D splits channels into contiguous groups,
    # as PyTorch's does, so the groups hold the same channels in both frameworks.
    x = relu(conv2d(x, 96, 11, stride=4, init=_paper_init(0.0), name="features.0"),
             name="features.1")  # (227 - 11) / 4 + 1 = 55
    x = _lrn(x, "features.2")
    x = max_pool2d(x, 3, 2, name="features.3")  # 27x27x96
    x = relu(conv2d(x, 256, 5, padding=2, groups=2, init=_paper_init(1.0), name="features.4"),
             name="features.5")
    x = _lrn(x, "features.6")
    x = max_pool2d(x, 3, 2, name="features.7")  # 13x13x256
    x = relu(conv2d(x, 384, 3, padding=1, init=_paper_init(0.0), name="features.8"),
             name="features.9")
    x = relu(conv2d(x, 384, 3, padding=1, groups=2, init=_paper_init(1.0), name="features.10"),
             name="features.11")
    x = relu(conv2d(x, 256, 3, padding=1, groups=2, init=_paper_init(1.0), name="features.12"),
             name="features.13")
    x = max_pool2d(x, 3, 2, name="features.14")  # 6x6x256
    x = keras.layers.Flatten(name="flatten")(x)  # 9216, in (H, W, C) order
    x = relu(dense(x, 4096, init=_paper_init(1.0), name="classifier.0"), name="classifier.1")
    x = keras.layers.Dropout(dropout, name="classifier.2")(x)
    x = relu(dense(x, 4096, init=_paper_init(1.0), name="classifier.3"), name="classifier.4")
    x = keras.layers.Dropout(dropout, name="classifier.5")(x)
    return dense(x, num_classes, init=_paper_init(0.0), name="classifier.6")
