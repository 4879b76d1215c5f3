"""The seed's four small networks and the zoo's two tiny test networks, in Keras 3.

Torch definitions: nnscale.zoo.seed_models (from the framework slides of Dorobisz, Pietroń,
Wielgosz, Karwatowski, Wiatr, "Scalability analysis of neural networks on multiple GPGPUs", AGH
Kraków, 2019) and nnscale.zoo.test_models. Layer names are the torch modules' names, so a weight of
one model can be found in the other by name. Shapes in the comments are (H, W, C).
"""

from __future__ import annotations

import keras

from nnscale.kerasnets.layers import (
    TorchInit, batch_norm, conv2d, dense, initializers, max_pool2d, relu,
)
from nnscale.kerasnets.registry import register_keras_model


@register_keras_model(
    "caffe-conv", input_shape=(100, 100, 1), num_classes=3,
    description="one convolution: 100x100x1 input, 3 filters 5x5, stride 1 -> 96x96x3")
def caffe_conv(x, num_classes: int):
    # convolution_param { num_output: 3 kernel_size: 5 stride: 1 }: 100 - 5 + 1 = 96. The slide's
    # Gaussian(std 0.01) weight filler and constant-0 bias filler, as in the zoo.
    weights = initializers(TorchInit("normal", 0.01), TorchInit("constant", 0.0))
    return conv2d(x, num_classes, 5, name="conv", init=weights)


@register_keras_model(
    "tf-mnist-convnet", input_shape=(28, 28, 1), num_classes=10,
    description="conv 32@5x5, pool, conv 64@3x3, pool, dense 1024, dense 10")
def tf_mnist_convnet(x, num_classes: int, dropout: float = 0.25):
    x = relu(conv2d(x, 32, 5, name="conv1"), name="relu1")  # 24x24x32
    x = max_pool2d(x, 2, 2, name="pool1")  # 12x12x32
    x = relu(conv2d(x, 64, 3, name="conv2"), name="relu2")  # 10x10x64
    x = max_pool2d(x, 2, 2, name="pool2")  # 5x5x64
    x = keras.layers.Flatten(name="flatten")(x)  # 1600
    x = dense(x, 1024, name="fc1")  # no activation: the slide passes none
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    return dense(x, num_classes, name="out")


@register_keras_model(
    "matconvnet-lenet", input_shape=(28, 28, 1), num_classes=10,
    description="LeNet as four convolutions (the last two act as fully connected layers)")
def matconvnet_lenet(x, num_classes: int):
    x = conv2d(x, 20, 5, name="conv1")  # 24x24x20; the slide has no ReLU after conv1 or conv2
    x = max_pool2d(x, 2, 2, name="pool1")  # 12x12x20
    x = conv2d(x, 50, 5, name="conv2")  # 8x8x50
    x = max_pool2d(x, 2, 2, name="pool2")  # 4x4x50
    x = relu(conv2d(x, 500, 4, name="conv3"), name="relu3")  # 1x1x500
    x = conv2d(x, num_classes, 1, name="conv4")  # 1x1x10; softmaxloss is the training loss
    return keras.layers.Flatten(name="flatten")(x)


@register_keras_model(
    "pytorch-mnist-net", input_shape=(28, 28, 1), num_classes=10,
    description="conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc 10, log_softmax")
def pytorch_mnist_net(x, num_classes: int):
    x = relu(conv2d(x, 20, 5, name="conv1"), name="relu1")  # 24x24x20
    x = max_pool2d(x, 2, 2, name="pool1")  # 12x12x20
    x = relu(conv2d(x, 50, 5, name="conv2"), name="relu2")  # 8x8x50
    x = max_pool2d(x, 2, 2, name="pool2")  # 4x4x50
    x = keras.layers.Flatten(name="flatten")(x)  # 800 (torch: x.view(-1, 4*4*50))
    x = relu(dense(x, 500, name="fc1"), name="relu3")
    x = dense(x, num_classes, name="fc2")
    return keras.layers.Activation(keras.activations.log_softmax, name="log_softmax")(x)


@register_keras_model(
    "test-tiny-resnet", input_shape=(32, 32, 3), num_classes=10,
    description="5 convs in 2 residual blocks; for fast tests")
def tiny_resnet(x, num_classes: int, width: int = 8):
    # stem 3x3/2 padding 1 on 32x32: SAME would pad 0 before and 1 after, so it pads explicitly.
    x = conv2d(x, width, 3, stride=2, padding=1, use_bias=False, name="stem")  # 16x16x8
    x = relu(batch_norm(x, name="bn"), name="relu")
    for i in range(2):  # two residual blocks, identity skip (no convolution on the skip path)
        prefix = f"blocks.{i}"
        y = conv2d(x, width, 3, padding=1, use_bias=False, name=f"{prefix}.conv1")
        y = relu(batch_norm(y, name=f"{prefix}.bn1"), name=f"{prefix}.relu1")
        y = batch_norm(conv2d(y, width, 3, padding=1, use_bias=False, name=f"{prefix}.conv2"),
                       name=f"{prefix}.bn2")
        x = relu(keras.layers.Add(name=f"{prefix}.add")([x, y]), name=f"{prefix}.relu2")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)  # AdaptiveAvgPool2d(1) + flatten
    return dense(x, num_classes, name="fc")


@register_keras_model(
    "test-tiny-mlp", input_shape=(8, 8, 3), num_classes=10,
    description="two linear layers; for fast tests")
def tiny_mlp(x, num_classes: int):
    x = keras.layers.Flatten(name="net.0")(x)  # 192 features, in (H, W, C) order
    x = relu(dense(x, 32, name="net.1"), name="net.2")
    return dense(x, num_classes, name="net.3")
