"""Fixtures for the measurement engine's tests: a results store and a private cache.

Worker processes cost a Python + torch start-up each (~3-4 s on the 2-core development machine),
so the tests that need real workers are few and combine several checks; the methodology, the
batch search and tuning are tested in-process with fake timers and fake runners.
"""

from __future__ import annotations

import pytest

from nnscale.store import open_store


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """`nnscale device`'s cache goes to a temporary directory, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def store(tmp_path):
    with open_store(str(tmp_path / "results.db")) as s:
        yield s
