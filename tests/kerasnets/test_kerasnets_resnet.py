"""ResNet v1.5 (torchvision's) and v1 (the paper's), 50 and 152 layers, in Keras, are the torch
zoo's, exactly: the same parameters, layers and outputs."""

from __future__ import annotations

import pytest
from kerasnets_support import check_same_as_torch, require_keras

keras = require_keras()


@pytest.mark.parametrize("name", ["resnet50", "resnet152", "resnet50-v1", "resnet152-v1"])
def test_same_as_torch(name: str) -> None:
    check_same_as_torch(name)
