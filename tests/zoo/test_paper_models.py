"""The paper-original models: exact sizes, layer counts, shapes and MACs from the papers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nnscale.zoo import create_model, model_info

# name -> (parameters, Conv2d modules, Linear modules)
EXPECTED = {
    "alexnet-original": (60_965_224, 5, 3),
    "inception-v1-original": (6_998_552, 57, 1),
    "resnet50-v1": (25_557_032, 53, 1),  # = torchvision's resnet50
    "resnet152-v1": (60_192_808, 155, 1),  # = torchvision's resnet152; 1 + 50*3 + 4 convs
}


def _meta(name: str, **overrides) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **overrides)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def _macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one sample: convolution and matmul flops over 2."""
    x = torch.empty(1, *shape, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    flops = counter.get_flop_counts()["Global"]
    ops = ("convolution", "addmm", "mm")
    return sum(n for op, n in flops.items() if str(op).split(".")[1] in ops) // 2


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registered_as_paper_models(name: str) -> None:
    info = model_info(name)
    assert info.family == "paper"
    assert info.num_classes == 1000
    assert info.paper and info.source.startswith("written from the paper")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sizes_and_layer_counts(name: str) -> None:
    params, convs, linears = EXPECTED[name]
    model = _meta(name)
    assert _params(model) == params
    assert _count(model, nn.Conv2d) == convs
    assert _count(model, nn.Linear) == linears


@pytest.mark.parametrize("name", ["alexnet-original", "inception-v1-original", "resnet50-v1"])
def test_cpu_forward_shape(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    shape = model_info(name).input_shape
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_resnet152_v1_meta_forward_shape() -> None:
    model = _meta("resnet152-v1")
    assert model(torch.empty(2, 3, 224, 224, device="meta")).shape == (2, 1000)


def test_alexnet_original_input_and_macs() -> None:
    assert model_info("alexnet-original").input_shape == (3, 227, 227)
    model = _meta("alexnet-original")
    assert model.features(torch.empty(1, 3, 227, 227, device="meta")).shape == (1, 256, 6, 6)
    assert [m.groups for m in model.modules() if isinstance(m, nn.Conv2d)] == [1, 2, 1, 2, 2]
    assert _macs(model, (3, 227, 227)) == 724_406_816


def test_resnet50_v1_stride_on_first_conv() -> None:
    model = _meta("resnet50-v1")
    block = model.layer2[0]
    assert block.conv1.stride == (2, 2) and block.conv1.kernel_size == (1, 1)
    assert block.conv2.stride == (1, 1) and block.conv2.kernel_size == (3, 3)
    assert block.downsample[0].stride == (2, 2)
    # Batch norm after every convolution, as in the paper.
    assert _count(model, nn.BatchNorm2d) == _count(model, nn.Conv2d)


def test_resnet50_v1_macs() -> None:
    macs = _macs(_meta("resnet50-v1"), (3, 224, 224))
    assert macs == pytest.approx(3.86e9, rel=5e-3)
    assert macs == 3_857_973_248  # torchvision's v1.5 resnet50: 4,089,184,256


def test_inception_v1_original_is_the_paper_network() -> None:
    model = _meta("inception-v1-original")
    assert _count(model, nn.BatchNorm2d) == 0
    assert _count(model, nn.LocalResponseNorm) == 2
    kernels = {m.kernel_size for m in model.modules() if isinstance(m, nn.Conv2d)}
    assert (5, 5) in kernels
    assert _macs(model, (3, 224, 224)) == pytest.approx(1.58e9, rel=5e-3)


def test_inception_v1_aux_logits() -> None:
    plain = _params(_meta("inception-v1-original"))
    model = create_model("inception-v1-original", aux_logits=True, num_classes=10)
    # Two heads: (128*C + 128) + (2048*1024 + 1024) + (1024*10 + 10), C = 512 and 528.
    heads = sum(128 * c + 128 + 2048 * 1024 + 1024 + 1024 * 10 + 10 for c in (512, 528))
    assert _params(model) == plain - (1024 * 1000 + 1000) + (1024 * 10 + 10) + heads
    x = torch.randn(2, 3, 224, 224)
    model.train()
    out = model(x)
    assert isinstance(out, tuple) and len(out) == 3
    assert all(o.shape == (2, 10) for o in out)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 10)
