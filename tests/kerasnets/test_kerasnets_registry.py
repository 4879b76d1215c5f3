"""The Keras registry: the zoo's names, shapes and classes, and its errors."""

from __future__ import annotations

import pytest
from kerasnets_support import require_keras

keras = require_keras()

from nnscale.errors import UserError
from nnscale.kerasnets import (
    create_keras_model,
    keras_input_shape,
    keras_model_info,
    list_keras_models,
)
from nnscale.zoo import list_models, model_info

EXPECTED = {
    "alexnet", "alexnet-original", "googlenet", "inception-v1-original",
    "resnet50", "resnet152", "resnet50-v1", "resnet152-v1",
    "caffe-conv", "tf-mnist-convnet", "matconvnet-lenet", "pytorch-mnist-net",
    "test-tiny-resnet", "test-tiny-mlp",
}  # fmt: skip


def test_lists_the_zoo_models_it_defines() -> None:
    names = list_keras_models()
    assert set(names) == EXPECTED and names == sorted(names)
    assert set(names) <= set(list_models())
    # What the parent asks without importing keras: the zoo's flag, set where each model registers.
    assert {n for n in list_models() if model_info(n).keras_twin} == set(names)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_input_shape_and_classes_are_the_zoos(name: str) -> None:
    channels, height, width = model_info(name).input_shape
    assert keras_input_shape(name) == (height, width, channels)
    assert keras_model_info(name).num_classes == model_info(name).num_classes


def test_unknown_name_is_a_user_error_listing_the_known_ones() -> None:
    with pytest.raises(UserError) as err:
        create_keras_model("resnet51")
    message = str(err.value)
    assert "\n" not in message and "'resnet51'" in message and "did you mean resnet50" in message
    assert all(name in message for name in EXPECTED)
    with pytest.raises(UserError):
        keras_input_shape("vgg16")  # in the zoo, but without a Keras twin


def test_num_classes_override() -> None:
    model = create_keras_model("test-tiny-resnet", num_classes=3)
    assert model.output_shape == (None, 3) and model.input_shape == (None, 32, 32, 3)
    assert model.name == "test-tiny-resnet"
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(UserError, match="num_classes"):
            create_keras_model("test-tiny-resnet", num_classes=bad)
