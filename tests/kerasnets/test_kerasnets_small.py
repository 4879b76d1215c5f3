"""The seed's small nets and the zoo's tiny test nets in Keras are the torch zoo's, exactly."""

from __future__ import annotations

import pytest
from kerasnets_support import check_same_as_torch, require_keras

keras = require_keras()

NAMES = [
    "caffe-conv",
    "tf-mnist-convnet",
    "matconvnet-lenet",
    "pytorch-mnist-net",
    "test-tiny-resnet",
    "test-tiny-mlp",
]


@pytest.mark.parametrize("name", NAMES)
def test_same_as_torch(name: str) -> None:
    check_same_as_torch(name)
