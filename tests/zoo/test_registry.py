import pytest
import torch

from nnscale.errors import UserError
from nnscale.zoo import create_model, list_models, model_info, register_model
from nnscale.zoo.registry import _REGISTRY

REQUIRED = {
    "alexnet", "googlenet", "resnet50", "resnet101", "resnet152", "vgg16",
    "alexnet-original", "inception-v1-original", "resnet50-v1", "resnet152-v1",
    "caffe-conv", "tf-mnist-convnet", "matconvnet-lenet", "pytorch-mnist-net",
}


def test_required_entries_are_registered():
    assert REQUIRED <= set(list_models())


def test_pattern_and_family():
    assert list_models("resnet*") == ["resnet152-v1", "resnet50-v1", "resnet101", "resnet152", "resnet50"]
    assert set(list_models(family="seed")) == {"caffe-conv", "tf-mnist-convnet", "matconvnet-lenet",
                                               "pytorch-mnist-net"}
    assert list_models("RESNET50") == ["resnet50"]


def test_every_entry_is_self_describing():
    for name in list_models():
        info = model_info(name)
        # images: (C, H, W); language models: (S,), the default sequence length, and their shape
        dims = 1 if info.family == "lm" else 3
        assert info.name == name and info.source and len(info.input_shape) == dims and info.num_classes > 0
        assert (info.lm_shape is not None) == (info.family == "lm"), name
        if info.family in ("paper", "torchvision", "seed"):
            assert info.paper, name


def test_googlenet_aux_heads_off_by_default_and_switchable():
    with torch.device("meta"):
        plain = create_model("googlenet")
        aux = create_model("googlenet", aux_logits=True)
    assert plain.aux1 is None
    assert sum(p.numel() for p in aux.parameters()) > sum(p.numel() for p in plain.parameters())


def test_overrides_reach_the_constructor():
    model = create_model("test-tiny-resnet", num_classes=3)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_bad_override_is_a_user_error():
    with pytest.raises(UserError, match="does not accept"):
        create_model("test-tiny-mlp", depth=7)


def test_torchvision_dynamic_names():
    info = model_info("torchvision:inception_v3")
    assert info.input_shape == (3, 299, 299) and info.family == "torchvision"
    with torch.device("meta"):
        model = create_model("torchvision:mobilenet_v2")
    assert sum(p.numel() for p in model.parameters()) == 3_504_872  # torchvision's published count


def test_unknown_model_suggests_close_names():
    with pytest.raises(UserError, match="did you mean resnet50"):
        model_info("resnet5O")
    with pytest.raises(UserError, match="torchvision:resnet18"):
        model_info("torchvision:resnet1")


def test_timm_missing_names_the_extra():
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match=r"nnscale\[timm\]"):
            model_info("timm:resnet18")
    else:
        assert model_info("timm:resnet18").family == "timm"


def test_registering_twice_is_refused():
    name = next(iter(_REGISTRY))
    with pytest.raises(ValueError, match="twice"):
        register_model(name, family="test", source="x")(lambda: None)


def test_looking_models_up_does_not_import_torchvision_until_one_is_built():
    # Every command, sweep worker and torchrun rank looks models up; torchvision costs ~3 s to
    # import on the 2-core VM (torchvision_models.py), so only building one of its models may.
    import subprocess
    import sys

    code = ("import sys\nfrom nnscale.zoo import list_models, model_info, create_model\n"
            "list_models(); info = model_info('resnet50'); model_info('resnet50-v1')\n"
            "create_model('test-tiny-mlp')\n"
            "assert 'torchvision' not in sys.modules, 'imported by a lookup'\n"
            "m = create_model('resnet50-v1')\n"
            "assert 'torchvision' in sys.modules and type(m.layer2[0]).__name__ == 'BottleneckV1'\n"
            "print(info.input_shape)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(3, 224, 224)"
