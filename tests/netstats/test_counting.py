"""Statistics against published and analytic values (issue 2's "must show")."""

import pytest
import torch
from torch import nn

from nnscale.netstats import network_stats
from nnscale.netstats.counting import _first_tensor
from nnscale.zoo import create_model


def close(value, expected, rel):
    return abs(value - expected) <= rel * expected


def test_alexnet_original_matches_seed():
    s = network_stats("alexnet-original")
    assert s.input_shape == (3, 227, 227)
    assert (s.conv_layers, s.conv_depth, s.fc_layers) == (5, 5, 3)
    assert close(s.params_total, 61.0e6, 0.005)
    assert close(s.macs, 724e6, 0.005)
    assert s.macs == 724_406_816  # the arithmetic in paper_models.py


def test_resnet50_v1():
    s = network_stats("resnet50-v1")
    assert (s.conv_layers, s.conv_depth, s.fc_layers) == (53, 49, 1)
    assert s.params_total == 25_557_032
    assert close(s.macs, 3.86e9, 0.005)


def test_inception_v1_original():
    s = network_stats("inception-v1-original")
    assert (s.conv_layers, s.conv_depth, s.fc_layers) == (57, 21, 1)
    assert close(s.params_total, 7.0e6, 0.01)
    assert close(s.macs, 1.58e9, 0.005)


# torchvision's published parameter counts and GFLOPS (really GMACs) from its model docs' tables.
TORCHVISION = {
    "alexnet": (61_100_840, 0.714e9),
    "googlenet": (6_624_904, 1.498e9),
    "resnet50": (25_557_032, 4.089e9),
    "resnet152": (60_192_808, 11.514e9),
    "vgg16": (138_357_544, 15.47e9),
}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_published_values(name):
    params, macs = TORCHVISION[name]
    s = network_stats(name)
    assert s.params_total == params
    assert close(s.macs, macs, 0.001)


def test_resnet101_params():
    assert network_stats("resnet101").params_total == 44_549_160


def _analytic_macs(module: nn.Module, out_shape: tuple[int, ...]) -> int:
    """Independent formula: conv out_h*out_w*c_out*c_in/groups*k_h*k_w; linear in*out (per position)."""
    if isinstance(module, nn.Conv2d):
        c_out, h, w = out_shape
        kh, kw = module.kernel_size
        return h * w * c_out * (module.in_channels // module.groups) * kh * kw
    positions = 1
    for d in out_shape[:-1]:
        positions *= d
    return positions * module.in_features * module.out_features


@pytest.mark.parametrize("name", ["alexnet-original", "inception-v1-original", "resnet50-v1",
                                  "alexnet", "googlenet", "resnet50", "vgg16", "pytorch-mnist-net"])
def test_analytic_formula_agrees_on_every_layer(name):
    s = network_stats(name)
    with torch.device("meta"):
        modules = dict(create_model(name).named_modules())
    checked = 0
    for row in s.layers:
        module = modules.get(row.name)
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert row.macs == _analytic_macs(module, row.output_shape), row.name
            checked += 1
    assert checked == s.conv_layers + s.fc_layers
    assert sum(r.macs for r in s.layers) == s.macs


def test_weights_only_count_follows_sze():
    # AlexNet (grouped): conv weights 2,332,704 + fc weights 58,621,952 (no biases), Sze et al. Table III.
    assert network_stats("alexnet-original").params_weights == 2_332_704 + 58_621_952


def test_training_flops_are_about_three_times_forward():
    s = network_stats("resnet50")
    # backward = grad wrt inputs + grad wrt weights, each ~ the forward; the first conv skips the first.
    assert 2.9 < s.training_flops / s.forward_flops < 3.0
    assert s.forward_flops == 2 * s.macs + 0  # conv + linear are all FlopCounterMode counts here


def test_activation_memory_of_a_single_conv():
    # caffe-conv saves nothing but its input for the weight gradient: 1x100x100 fp32 = 40,000 bytes.
    assert network_stats("caffe-conv").activation_bytes == 100 * 100 * 4


def test_input_size_changes_counts():
    full = network_stats("resnet50")
    big = network_stats("resnet50", (3, 448, 448))
    assert big.params_total == full.params_total
    fc = 2048 * 1000
    # Every convolution works on 4x the positions at 448 (all strides divide 448 exactly); the fc not.
    assert big.macs - fc == 4 * (full.macs - fc)


def test_untraceable_model_has_unknown_depth_not_a_wrong_one():
    class Dynamic(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
                return self.conv(x)
            return x

    from nnscale.netstats import conv_depth

    assert conv_depth(Dynamic()) is None


def test_first_tensor_unwraps_aux_outputs():
    t = torch.zeros(1)
    assert _first_tensor((t, torch.ones(1))) is t


def test_aux_head_at_one_by_one_counts_in_training():
    # inception_v3's aux head meets batch norm at 1x1: training is counted at batch 2 and halved.
    s = network_stats("torchvision:inception_v3")
    assert s.params_total == 27_161_264  # torchvision's published count (aux head included)
    assert 2.5 < s.training_flops / s.forward_flops < 3.1
