"""Helpers shared by the Keras model tests: keras-or-skip, and the comparison with the torch zoo.

Not a test module (no test_ prefix); the test modules import it from their own directory.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest


def require_keras():
    """Import keras, or skip the calling module with the reason, outside CI; in CI (CI=true) a
    missing keras or backend is a failure, never a silent skip."""
    try:
        import keras
    except ImportError as exc:  # keras itself, or the backend KERAS_BACKEND names
        reason = f"keras with a backend is not installed ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the Keras model tests", pytrace=False)
        pytest.skip(reason, allow_module_level=True)
    return keras


@dataclass(frozen=True)
class Structure:
    """What must agree between a torch model and its Keras twin, in framework-neutral terms."""

    trainable: int  # torch: parameters; keras: trainable weights
    bn_statistics: int  # torch: running_mean + running_var sizes; keras: non-trainable weights
    convs: Counter  # (kh, kw, in/groups, out, has bias) of each convolution
    linears: Counter  # (in, out, has bias) of each fully connected layer
    batch_norms: int
    lrns: int


def torch_model(name: str):
    """The zoo's model with real (random) weights, in eval mode."""
    import torch

    from nnscale.zoo import create_model

    torch.manual_seed(0)
    return create_model(name)


def keras_model(name: str):
    from nnscale.kerasnets import create_keras_model

    return create_keras_model(name)


def torch_structure(model) -> Structure:
    from torch import nn

    convs, linears, bns, lrns, stats = Counter(), Counter(), 0, 0, 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            out, cin, kh, kw = m.weight.shape
            convs[(kh, kw, cin, out, m.bias is not None)] += 1
        elif isinstance(m, nn.Linear):
            linears[(m.in_features, m.out_features, m.bias is not None)] += 1
        elif isinstance(m, nn.BatchNorm2d):
            bns += 1
            stats += m.running_mean.numel() + m.running_var.numel()
        elif isinstance(m, nn.LocalResponseNorm):
            lrns += 1
    trainable = sum(p.numel() for p in model.parameters())
    return Structure(trainable, stats, convs, linears, bns, lrns)


def keras_structure(model) -> Structure:
    import keras

    from nnscale.kerasnets.layers import LocalResponseNorm

    convs, linears, bns, lrns = Counter(), Counter(), 0, 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, out = layer.kernel.shape
            convs[(kh, kw, cin, out, layer.use_bias)] += 1
        elif isinstance(layer, keras.layers.Dense):
            cin, out = layer.kernel.shape
            linears[(cin, out, layer.use_bias)] += 1
        elif isinstance(layer, keras.layers.BatchNormalization):
            bns += 1
        elif isinstance(layer, LocalResponseNorm):
            lrns += 1
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    stats = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return Structure(trainable, stats, convs, linears, bns, lrns)


def randomise_batch_norm(model) -> None:
    """Give the torch model's batch norms non-trivial statistics and affine parameters, so that a
    transfer that drops or swaps them, or a different epsilon, shows in the outputs."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))


def torch_weights_for_keras(torch_net, keras_net) -> dict[str, list[np.ndarray]]:
    """Each Keras layer's weights, taken from the torch module of the same name.

    Convolution kernels go from (out, in/groups, kh, kw) to (kh, kw, in/groups, out); dense kernels
    are transposed, and a dense layer fed by a Flatten of an (H, W, C) map has its input rows
    reordered from torch's (C, H, W) flattening to Keras's (H, W, C) one. Asserts that the two
    models have the same set of layers with weights.
    """
    import keras

    modules = {
        n: m for n, m in torch_net.named_modules() if any(True for _ in m.parameters(recurse=False))
    }
    weighted = [layer for layer in keras_net.layers if layer.weights]
    assert sorted(layer.name for layer in weighted) == sorted(modules), "layers with weights differ"
    out: dict[str, list[np.ndarray]] = {}
    flatten_shape = None
    for layer in keras_net.layers:
        if isinstance(layer, keras.layers.Flatten):
            flatten_shape = tuple(layer.input.shape[1:])
        if not layer.weights:
            continue
        module = modules[layer.name]
        params = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
        if isinstance(layer, keras.layers.Conv2D):
            arrays = [params["weight"].transpose(2, 3, 1, 0)]
        elif isinstance(layer, keras.layers.Dense):
            weight = params["weight"]
            if flatten_shape is not None and len(flatten_shape) == 3:
                height, width, channels = flatten_shape
                weight = weight.reshape(-1, channels, height, width).transpose(0, 2, 3, 1)
                weight = weight.reshape(weight.shape[0], -1)
            flatten_shape = None
            arrays = [weight.T]
        elif isinstance(layer, keras.layers.BatchNormalization):
            keys = ("weight", "bias", "running_mean", "running_var")
            arrays = [params[k] for k in keys]
        else:
            raise TypeError(f"no weight transfer for {type(layer).__name__} {layer.name}")
        if "bias" in params and not isinstance(layer, keras.layers.BatchNormalization):
            arrays.append(params["bias"])
        out[layer.name] = arrays
    return out


def set_weights(keras_net, weights: dict[str, list[np.ndarray]]) -> None:
    for layer in keras_net.layers:
        if layer.name in weights:
            layer.set_weights(weights[layer.name])


def sample_input(shape_chw: tuple[int, ...], batch: int = 1, seed: int = 2) -> np.ndarray:
    """A random NCHW float32 input: signed, so that max pooling over padding is tested too."""
    return np.random.default_rng(seed).standard_normal((batch, *shape_chw), dtype=np.float32)


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def torch_forward(model, x_nchw: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x_nchw)).numpy()


def assert_close(keras_out: np.ndarray, torch_out: np.ndarray) -> None:
    """float32 agreement up to summation order: relative 1e-3, absolute 1e-4 of the largest
    value."""
    torch_out = nchw_to_nhwc(torch_out)
    assert keras_out.shape == torch_out.shape
    scale = float(np.abs(torch_out).max()) or 1.0
    np.testing.assert_allclose(keras_out, torch_out, rtol=1e-3, atol=1e-4 * scale)


def check_same_as_torch(name: str) -> None:
    """The Keras model is the torch zoo model: structure, then outputs on the same weights."""
    net, knet = torch_model(name), keras_model(name)
    check_structure(net, knet)
    check_outputs(name, net, knet)


def check_structure(net, knet) -> None:
    """Parameters, batch norm statistics and the layer inventory equal the torch zoo model's."""
    expected = torch_structure(net)
    got = keras_structure(knet)
    assert got.trainable == expected.trainable, "trainable parameters differ"
    assert got.bn_statistics == expected.bn_statistics, "batch norm statistics differ"
    assert got.convs == expected.convs, "convolutions differ"
    assert got.linears == expected.linears, "fully connected layers differ"
    assert (got.batch_norms, got.lrns) == (expected.batch_norms, expected.lrns)


def check_outputs(name: str, net, knet) -> None:
    """With the torch model's weights, the Keras model computes the torch model's outputs (batch 1,
    the zoo's default input), so shapes, padding, pooling, groups and normalisations all agree."""
    import keras

    from nnscale.zoo import model_info

    randomise_batch_norm(net)
    set_weights(knet, torch_weights_for_keras(net, knet))
    x = sample_input(model_info(name).input_shape)
    expected = torch_forward(net, x)
    got = keras.ops.convert_to_numpy(knet(nchw_to_nhwc(x), training=False))
    assert got.shape == nchw_to_nhwc(expected).shape  # (1, classes), or NHWC of torch's NCHW
    assert_close(got, expected)
