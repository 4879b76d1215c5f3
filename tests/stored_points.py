"""A store holding synthetic points, for the tests that read predictions back from a stored run."""

from __future__ import annotations

from collections.abc import Iterable

from nnscale.records import Measurement
from nnscale.store import open_store


def store_points(path: str, run: str, points: Iterable[Measurement]) -> str:
    """Write `points` as run `run` into a new store at `path`; returns `path`."""
    with open_store(path) as store:
        created = store.create_run(run)
        for m in points:
            store.add_measurement(created, m)
    return path
