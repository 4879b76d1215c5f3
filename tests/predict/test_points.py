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


def _ddp(world: int, step_ms: float, copies: int = 1, batch: int = 64, **parts) -> Measurement:
    from nnscale.records import DISTRIBUTED, DDPOptions

    w = Workload("pytorch-mnist-net", "training", batch, (1, 28, 28), threads=1, world_size=world,
                 kind=DISTRIBUTED, strategy="ddp", ddp=DDPOptions(), concurrent_copies=copies)
    extra = {"bytes_allreduced_per_step": 1.72e6} if world > 1 else {}
    return Measurement(w, "ok", stats={"step_time_ms": step_ms, **extra, **parts})


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


def test_loaded_factors_set_each_loaded_reference_against_the_lone_step_of_its_batch():
    from nnscale.predict.calibrate import loaded_factors

    lone = _ddp(1, 20.0)
    records = [lone, _ddp(1, 24.0, copies=2), _ddp(1, 33.0, copies=4), _ddp(1, 50.0, copies=2, batch=128)]
    # without breakdowns: the steps; another batch than the lone point's is left out
    assert dict(loaded_factors(records, lone)) == pytest.approx({2: 1.2, 4: 1.65})
    assert loaded_factors(records[3:], lone) == ()


def test_the_loaded_ratio_is_the_breakdowns_compute_not_the_hooks_wait():
    from nnscale.predict.points import compute_s, loaded_ratio

    # Session 11's VM: alone 43.1 ms a step, 43.3 of compute; two copies 50.3 ms a step, of which
    # their DDP hooks waited 6.7 ms (a group of one rank: no peer, load alone), 43.3 of compute.
    lone = _ddp(1, 43.13, forward_ms=16.0, backward_ms=26.3, optimizer_ms=1.0)
    busy = _ddp(1, 50.28, copies=2, forward_ms=16.0, backward_ms=26.1, optimizer_ms=1.2)
    assert compute_s(lone) == pytest.approx(0.0433) and compute_s(busy) == pytest.approx(0.0433)
    assert loaded_ratio(busy, lone) == pytest.approx(1.0)
    assert loaded_ratio(_ddp(1, 50.28, copies=2), lone) == pytest.approx(50.28 / 43.13)  # no breakdown
