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


def _ddp(world: int, step_ms: float, copies: int = 1, batch: int = 64) -> Measurement:
    from nnscale.records import DISTRIBUTED, DDPOptions

    w = Workload("pytorch-mnist-net", "training", batch, (1, 28, 28), threads=1, world_size=world,
                 kind=DISTRIBUTED, strategy="ddp", ddp=DDPOptions(), concurrent_copies=copies)
    extra = {"bytes_allreduced_per_step": 1.72e6} if world > 1 else {}
    return Measurement(w, "ok", stats={"step_time_ms": step_ms, **extra})


def test_a_step_point_carries_the_loaded_reference_of_as_many_copies_as_its_node_had_workers():
    from nnscale.predict.points import extract_points

    lone, busy, two = _ddp(1, 20.0), _ddp(1, 25.0, copies=2), _ddp(2, 30.0)
    (step,), _ = extract_points([lone, busy, two])
    # compute stays the lone worker's; the factor is the loaded copies' step over it
    assert step.profile.step_time_s == pytest.approx(0.020)
    assert dict(step.profile.loaded_factor) == pytest.approx({2: 1.25})
    assert step.profile.co_located_factor(2) == pytest.approx(1.25)
    # the loaded point itself is neither a lone reference nor a step point
    points, skipped = extract_points([busy, two])
    assert points == [] and "no single-device point" in skipped[0]
    (step,), _ = extract_points([lone, _ddp(1, 25.0, copies=4), two])  # 4 copies: not this node's 2
    assert step.profile.loaded_factor == ()


def test_loaded_factors_set_each_loaded_reference_against_the_lone_step_at_its_batch():
    from nnscale.predict.calibrate import loaded_factors
    from nnscale.predict.model import ModelProfile

    lone = _ddp(1, 20.0)
    profile = ModelProfile("pytorch-mnist-net", 431_080, 1e6, 3e6, step_time_s=0.020, measured_batch=64)
    records = [lone, _ddp(1, 24.0, copies=2), _ddp(1, 30.0, copies=2, batch=128), _ddp(1, 33.0, copies=4)]
    # batch 128 without a sweep: the lone step scaled linearly, 40 ms; the latest per N is kept
    assert dict(loaded_factors(records, lone, profile)) == pytest.approx({2: 0.75, 4: 1.65})
    assert dict(loaded_factors(records[:2], lone, profile)) == pytest.approx({2: 1.2})
    swept = ModelProfile("pytorch-mnist-net", 431_080, 1e6, 3e6, step_time_s=0.020, measured_batch=64,
                         sweep=((32, 0.011), (64, 0.020)))
    # batch 128 lies outside the sweep's 32-64: no factor from it (a guess)
    assert dict(loaded_factors(records[:3], lone, swept)) == pytest.approx({2: 1.2})
