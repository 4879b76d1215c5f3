"""AlexNet in Keras (torchvision's single tower and the 2012 two-tower original) is the torch
zoo's, exactly: the same parameters, layers and outputs."""

from __future__ import annotations

import pytest
from kerasnets_support import check_same_as_torch, require_keras

keras = require_keras()


@pytest.mark.parametrize("name", ["alexnet", "alexnet-original"])
def test_same_as_torch(name: str) -> None:
    check_same_as_torch(name)
