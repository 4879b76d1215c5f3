"""The building blocks compute exactly what their torch counterparts compute, on NHWC tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kerasnets_support import require_keras

keras = require_keras()

from nnscale.kerasnets.layers import (
    LocalResponseNorm,
    TorchInit,
    conv2d,
    max_pool2d,
    same_is_torch,
    torch_output_size,
)


def _nchw(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def _run(build, x_nchw: np.ndarray) -> np.ndarray:
    """Build a one-block Keras model on x's shape and return its NCHW output for x."""
    inputs = keras.Input(shape=x_nchw.shape[2:] + x_nchw.shape[1:2])
    model = keras.Model(inputs, build(inputs))
    out = keras.ops.convert_to_numpy(model(x_nchw.transpose(0, 2, 3, 1)))
    return out.transpose(0, 3, 1, 2)


@pytest.mark.parametrize("size", [2, 3, 4, 5])
def test_local_response_norm_is_torchs(size: int) -> None:
    # Inputs of magnitude ~10 so that the alpha term is comparable with k and the window matters;
    # even sizes check the asymmetric window (size // 2 before, (size - 1) // 2 after).
    x = _nchw(np.random.default_rng(0), (2, 7, 3, 4), scale=10.0)
    params = {"size": size, "alpha": 0.1, "beta": 0.75, "k": 2.0}
    expected = torch.nn.LocalResponseNorm(**params)(torch.from_numpy(x)).numpy()
    got = _run(lambda t: LocalResponseNorm(**params)(t), x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# (input size, kernel, stride, padding, ceil_mode): the pools of the zoo's models, and odd cases.
POOLS = [
    (112, 3, 2, 1, False),  # resnet's max pool: SAME would shift the windows
    (112, 3, 2, 0, True),  # googlenet's pools: SAME pads 0 before and 1 after, as ceil mode
    (14, 2, 2, 0, True),  # googlenet's maxpool4
    (28, 3, 1, 1, True),  # an inception module's pool branch
    (55, 3, 2, 0, False),  # alexnet's
    (9, 3, 2, 1, True),  # ceil mode with padding: a window would start in the right padding
    (10, 3, 3, 1, True),
    (7, 2, 2, 0, True),  # ceil mode needs a trailing cell that SAME would also add
    (8, 3, 2, 0, True),
]


@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "ceil_mode"), POOLS)
def test_max_pool_is_torchs(size, kernel, stride, padding, ceil_mode) -> None:
    # All-negative inputs: a pool that padded with zeros instead of -inf would return 0 at edges.
    x = -np.abs(_nchw(np.random.default_rng(1), (2, 3, size, size))) - 0.1
    expected = F.max_pool2d(torch.from_numpy(x), kernel, stride, padding, ceil_mode=ceil_mode)
    got = _run(lambda t: max_pool2d(t, kernel, stride, padding=padding, ceil_mode=ceil_mode,
                                    name="pool"), x)
    assert got.shape == tuple(expected.shape)
    np.testing.assert_array_equal(got, expected.numpy())


# (input size, kernel, stride, padding, groups): the zoo's convolutions and their padding cases.
CONVS = [
    (224, 11, 4, 2, 1),  # torchvision alexnet conv1: SAME would give 56, torch 55
    (227, 11, 4, 0, 1),  # alexnet-original conv1
    (27, 5, 1, 2, 2),  # alexnet-original conv2, grouped
    (224, 7, 2, 3, 1),  # resnet / googlenet stem: SAME pads 2 before, torch 3
    (56, 3, 2, 1, 1),  # resnet v1.5 downsampling 3x3: SAME pads 0 before, torch 1
    (56, 1, 2, 0, 1),  # resnet v1 strided 1x1
    (13, 3, 1, 1, 2),
]


@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "groups"), CONVS)
def test_conv2d_is_torchs(size, kernel, stride, padding, groups) -> None:
    rng = np.random.default_rng(2)
    cin, cout = 4, 6
    x = _nchw(rng, (1, cin, size, size))
    weight = _nchw(rng, (cout, cin // groups, kernel, kernel))
    bias = _nchw(rng, (cout,))
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias),
                        stride, padding, groups=groups).numpy()

    def build(t):
        out = conv2d(t, cout, kernel, stride=stride, padding=padding, groups=groups, name="conv")
        return out

    inputs = keras.Input(shape=(size, size, cin))
    model = keras.Model(inputs, build(inputs))
    model.get_layer("conv").set_weights([weight.transpose(2, 3, 1, 0), bias])
    got = keras.ops.convert_to_numpy(model(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_output_size_and_same_rule() -> None:
    assert torch_output_size(112, 3, 2, 0, ceil_mode=True) == 56
    assert torch_output_size(112, 3, 2, 0, ceil_mode=False) == 55
    assert torch_output_size(9, 3, 2, 1, ceil_mode=True) == 5  # not 6: it would start in padding
    assert same_is_torch(28, 3, 1, 1)  # 3x3/1 padding 1: SAME is torch's
    assert same_is_torch(112, 3, 2, 0, ceil_mode=True)
    assert not same_is_torch(112, 3, 2, 1)  # SAME pads 0 before
    assert not same_is_torch(224, 11, 4, 2)  # SAME gives 56 outputs, torch 55


def test_torch_init_statistics() -> None:
    shape = (3, 3, 64, 128)  # fan_in 576, fan_out 1152
    kaiming = keras.ops.convert_to_numpy(TorchInit("kaiming_normal_fan_out")(shape))
    assert kaiming.std() == pytest.approx(math.sqrt(2 / 1152), rel=0.02)
    xavier = keras.ops.convert_to_numpy(TorchInit("xavier_uniform")(shape))
    assert np.abs(xavier).max() <= math.sqrt(6 / (576 + 1152))
    assert xavier.std() == pytest.approx(math.sqrt(2 / (576 + 1152)), rel=0.02)
    uniform = keras.ops.convert_to_numpy(TorchInit("uniform", 0.5)((1000,)))
    assert np.abs(uniform).max() <= 0.5
    assert uniform.std() == pytest.approx(0.5 / math.sqrt(3), rel=0.05)
    assert np.all(keras.ops.convert_to_numpy(TorchInit("constant", 0.2)((3,))) == np.float32(0.2))
    with pytest.raises(ValueError, match="kind"):
        TorchInit("orthogonal")
