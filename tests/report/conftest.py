"""Fixtures for the report tests: a synthetic run (see synthetic.py), stored or not, and reports
built from it once per module (building draws every plot: about a second)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import synthetic as S

from nnscale.records import Measurement, Workload
from nnscale.report import build_report

HOSTILE = "<script>alert(1)</script>"


def hostile_points() -> list[Measurement]:
    """A net whose name is markup, one measured point and one failed, to check escaping."""
    good = [m for m in S.sweep(models=("resnet50",), precisions=("fp32",), world_sizes=(1,))
            if m.workload.mode == "inference" and m.workload.batch_size in (1, 2, 4)]
    out = [Measurement(Workload(HOSTILE, m.workload.mode, m.workload.batch_size,
                                m.workload.input_shape, m.workload.device, m.workload.precision),
                       m.status, m.samples_ms, m.stats, m.error) for m in good]
    out.append(Measurement(Workload(HOSTILE, "training", 8, (3, 224, 224), "cuda:0"), "error",
                           error=f"RuntimeError: {HOSTILE} & \"quotes\" | pipes"))
    return out


@pytest.fixture(scope="session")
def run_points() -> list[Measurement]:
    return S.sweep() + hostile_points()


@pytest.fixture(scope="session")
def full_report(run_points):
    return build_report(run_points, S.ENVIRONMENT, predictions=S.predictions(),
                        netstats_rows=S.NETSTATS_ROWS, title=f"Run {HOSTILE}")


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


def slower(m: Measurement, factor: float) -> Measurement:
    """The same point with its throughput (and CI) scaled by `factor`."""
    t = m.stats.throughput
    scaled = {k: getattr(t, k) * factor for k in ("samples_per_s", "samples_per_s_ci_low",
                                                   "samples_per_s_ci_high")
              if getattr(t, k) is not None}
    stats = replace(m.stats, throughput=replace(t, **scaled))
    return Measurement(m.workload, m.status, m.samples_ms, stats, m.error)
