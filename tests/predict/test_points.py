"""predict/points.py: a point's samples as one launch's workers see them (the between-process
shift is no straggler), checked against exact values and the synchronisation term."""

from __future__ import annotations

import pytest

from nnscale.predict.points import jitter_samples_s
from nnscale.predict.terms import sync_cost_s
from nnscale.records import Measurement, Workload
from nnscale.records_stats import Processes, Stats


def point(samples_ms, counts) -> Measurement:
    w = Workload("pytorch-mnist-net", "training", 64, (1, 28, 28), threads=1)
    return Measurement(w, "ok", samples_ms=tuple(samples_ms),
                       stats=Stats(processes=Processes(processes=len(counts) or None,
                                                       process_iterations=tuple(counts) or None)))


def test_each_process_is_shifted_onto_the_points_median():
    # Two processes: one runs at 10 ms, the other at 20 ms, each with ±1 ms of jitter.
    m = point([9.0, 10.0, 11.0, 19.0, 20.0, 21.0], [3, 3])
    centre = 0.015  # the median of all six samples, 15 ms
    assert jitter_samples_s(m) == pytest.approx([centre - 0.001, centre, centre + 0.001] * 2)
    # Pooled raw, two workers would wait ~5 ms for each other; shifted, only the ±1 ms jitter.
    raw = sync_cost_s(0.015, 2, 0.0, [x / 1e3 for x in m.samples_ms])
    shifted = sync_cost_s(0.015, 2, 0.0, jitter_samples_s(m))
    # E[max of 2 draws] of {-1, 0, +1} ms equally likely: (-1 x 1 + 0 x 3 + 1 x 5) / 9 = 4/9 ms.
    assert shifted == pytest.approx(4 / 9 * 1e-3) and raw > 6 * shifted


def test_one_process_or_counts_that_do_not_match_keep_the_samples():
    assert jitter_samples_s(point([9.0, 10.0, 11.0], [3])) == pytest.approx([0.009, 0.010, 0.011])
    assert jitter_samples_s(point([9.0, 10.0, 11.0], [])) == pytest.approx([0.009, 0.010, 0.011])
    assert jitter_samples_s(point([9.0, 10.0, 11.0], [2, 2])) == pytest.approx([0.009, 0.010, 0.011])
