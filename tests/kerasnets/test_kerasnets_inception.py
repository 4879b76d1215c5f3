"""GoogLeNet (torchvision's) and Inception v1 as in the paper, in Keras, are the torch zoo's,
exactly: the same parameters, layers and outputs."""

from __future__ import annotations

import pytest
from kerasnets_support import check_same_as_torch, require_keras

keras = require_keras()


@pytest.mark.parametrize("name", ["googlenet", "inception-v1-original"])
def test_same_as_torch(name: str) -> None:
    check_same_as_torch(name)
