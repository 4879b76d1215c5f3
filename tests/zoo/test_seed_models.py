"""The seed's small nets have the layer shapes of its slides."""

import torch

from nnscale.netstats import network_stats
from nnscale.zoo import create_model


def shapes(name):
    return {r.name: (r.type, r.output_shape, r.params) for r in network_stats(name).layers}


def test_caffe_conv_prototxt():
    # input_dim 1,1,100,100; num_output 3, kernel 5, stride 1 -> 3x96x96, 3*25 weights + 3 biases.
    assert shapes("caffe-conv") == {"conv": ("Conv2d", (3, 96, 96), 78)}
    out = create_model("caffe-conv")(torch.zeros(1, 1, 100, 100))
    assert out.shape == (1, 3, 96, 96)


def test_tf_mnist_convnet():
    s = shapes("tf-mnist-convnet")
    assert s["conv1"] == ("Conv2d", (32, 24, 24), 32 * 25 + 32)
    assert s["conv2"] == ("Conv2d", (64, 10, 10), 64 * 32 * 9 + 64)
    assert s["fc1"] == ("Linear", (1024,), 1600 * 1024 + 1024)
    assert s["out"] == ("Linear", (10,), 1024 * 10 + 10)
    assert network_stats("tf-mnist-convnet").params_total == 1_669_002


def test_matconvnet_lenet():
    s = shapes("matconvnet-lenet")
    assert s["conv1"] == ("Conv2d", (20, 24, 24), 5 * 5 * 1 * 20 + 20)
    assert s["pool1"][1] == (20, 12, 12)
    assert s["conv2"] == ("Conv2d", (50, 8, 8), 5 * 5 * 20 * 50 + 50)
    assert s["pool2"][1] == (50, 4, 4)
    assert s["conv3"] == ("Conv2d", (500, 1, 1), 4 * 4 * 50 * 500 + 500)
    assert s["conv4"] == ("Conv2d", (10, 1, 1), 500 * 10 + 10)


def test_pytorch_mnist_net():
    s = shapes("pytorch-mnist-net")
    assert s["conv1"] == ("Conv2d", (20, 24, 24), 520)
    assert s["conv2"] == ("Conv2d", (50, 8, 8), 25_050)
    assert s["fc1"] == ("Linear", (500,), 400_500)
    assert s["fc2"] == ("Linear", (10,), 5_010)
    out = create_model("pytorch-mnist-net")(torch.zeros(2, 1, 28, 28))
    assert torch.allclose(out.exp().sum(1), torch.ones(2))  # log_softmax output


def test_lenet_and_pytorch_net_are_the_same_network_in_two_frameworks():
    a, b = network_stats("matconvnet-lenet"), network_stats("pytorch-mnist-net")
    assert a.params_total == b.params_total == 431_080
    assert a.macs == b.macs
