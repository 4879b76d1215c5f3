"""Fixtures for the prediction tests: a small net and a synthetic run (see synthetic_runs.py)."""

import pytest
from synthetic_runs import small_net, synthetic_records

from nnscale.predict.model import ModelProfile
from nnscale.records import Measurement


@pytest.fixture
def net() -> ModelProfile:
    return small_net()


@pytest.fixture
def records() -> list[Measurement]:
    return synthetic_records()
