"""Fixtures for the report tests: a synthetic run (see synthetic.py), stored or not, and reports
built from it once per module (building draws every plot: about a second)."""

from __future__ import annotations

import pytest
import synthetic as S
from synthetic import hostile_points, slower

from nnscale.records import Measurement
from nnscale.report import build_report

@pytest.fixture(scope="session")
def run_points() -> list[Measurement]:
    return S.sweep() + hostile_points()


@pytest.fixture(scope="session")
def full_report(run_points):
    return build_report(run_points, S.ENVIRONMENT, predictions=S.predictions(),
                        netstats_rows=S.NETSTATS_ROWS, title=f"Run {S.HOSTILE}")


@pytest.fixture
def store_with_runs(tmp_path):
    """An SQLite store with runs 'base' (the synthetic sweep) and 'next' (the same, some slower)."""
    from nnscale.store import open_store

    url = str(tmp_path / "results.db")
    with open_store(url) as store:
        base = store.create_run("base", environment=S.ENVIRONMENT)
        for m in S.sweep(models=("resnet50",), seed=0):
            store.add_measurement(base, m)
        nxt = store.create_run("next", environment=S.ENVIRONMENT)
        for m in S.sweep(models=("resnet50",), seed=1):
            if m.workload.batch_size == 16 and m.workload.mode == "inference" and m.stats:
                m = slower(m, 0.8)
            store.add_measurement(nxt, m)
    return url
